// The role commands of mosquitto's dynamic-security plugin: roles and their ACLs. A change disconnects everyone the
// role applies to, as mosquitto does, so their subscriptions are checked again when they come back.
import MQTTCodec

extension DynamicSecurityState {
    mutating func createRole(_ command: inout DynamicCommand) {
        guard let name = command.name("rolename", "Role name"),
            let textName = command.optionalText("textname", error: "Invalid/missing textname"),
            let textDescription = command.optionalText("textdescription", error: "Invalid/missing textdescription")
        else { return }
        guard role(name) == nil else {
            command.reply("Role already exists")
            return
        }
        var role = DynamicRole(name: name)
        role.textName = textName
        role.textDescription = textDescription
        role.acls = Self.aclLists(command.json.member("acls")?.arrayValue ?? [])
        roles[name] = role
        command.markChanged()
        command.reply()
    }

    mutating func getRole(_ command: inout DynamicCommand) {
        guard let name = command.name("rolename", "Role name") else { return }
        guard let role = role(name) else {
            command.reply("Role not found")
            return
        }
        command.reply(data: .object([("role", roleJSON(role))]))
    }

    mutating func modifyRole(_ command: inout DynamicCommand) {
        guard let name = command.name("rolename", "Role name") else { return }
        guard var role = role(name) else {
            command.reply("Role does not exist")
            return
        }
        let json = command.json
        if let text = json.string("textname").value { role.textName = text }
        if let text = json.string("textdescription").value { role.textDescription = text }
        if let acls = json.member("acls")?.arrayValue { role.acls = Self.aclLists(acls) }
        roles[name] = role
        command.markChanged(disconnecting: affected(byRole: name))
        command.reply()
    }

    mutating func deleteRole(_ command: inout DynamicCommand) {
        guard let name = command.name("rolename", "Role name") else { return }
        guard role(name) != nil else {
            command.reply("Role not found")
            return
        }
        let affected = affected(byRole: name)
        for username in Array(clients.keys) { clients[username]?.roles.remove(name: name) }
        for group in Array(groups.keys) { groups[group]?.roles.remove(name: name) }
        roles[name] = nil
        command.markChanged(disconnecting: affected)
        command.reply()
    }

    mutating func addRoleACL(_ command: inout DynamicCommand) {
        guard let name = command.name("rolename", "Role name") else { return }
        guard role(name) != nil else {
            command.reply("Role not found")
            return
        }
        guard let type = aclType(&command), let topic = aclTopic(&command) else { return }
        guard !(roles[name]?.acls[type] ?? []).contains(where: { $0.topic.utf8.elementsEqual(topic.utf8) }) else {
            command.reply("ACL with this topic already exists")
            return
        }
        let acl = RoleACL(
            topic: topic, priority: command.json.int("priority", default: 0),
            allow: command.json.bool("allow", default: false))
        roles[name]?.acls[type, default: []].insertOrdered(acl)
        command.markChanged(disconnecting: affected(byRole: name))
        command.reply()
    }

    mutating func removeRoleACL(_ command: inout DynamicCommand) {
        guard let name = command.name("rolename", "Role name") else { return }
        guard role(name) != nil else {
            command.reply("Role not found")
            return
        }
        guard let type = aclType(&command), let topic = aclTopic(&command) else { return }
        guard let index = roles[name]?.acls[type]?.firstIndex(where: { $0.topic.utf8.elementsEqual(topic.utf8) }) else {
            command.reply("ACL not found")
            return
        }
        roles[name]?.acls[type]?.remove(at: index)
        command.markChanged(disconnecting: affected(byRole: name))
        command.reply()
    }

    private func aclType(_ command: inout DynamicCommand) -> ACLType? {
        guard let text = command.json.string("acltype").value else {
            command.reply("Invalid/missing acltype")
            return nil
        }
        guard let type = ACLType(name: text) else {
            command.reply("Unknown acltype")
            return nil
        }
        return type
    }

    /// A rule's topic must be a valid subscription filter (mosquitto's `mosquitto_sub_topic_check`).
    private func aclTopic(_ command: inout DynamicCommand) -> String? {
        guard let topic = command.json.string("topic").value else {
            command.reply("Invalid/missing topic")
            return nil
        }
        guard DynamicCommand.isValidText(topic) else {
            command.reply("Topic not valid UTF-8")
            return nil
        }
        guard TopicFilter(topic) != nil else {
            command.reply("Invalid ACL topic")
            return nil
        }
        return topic
    }
}
