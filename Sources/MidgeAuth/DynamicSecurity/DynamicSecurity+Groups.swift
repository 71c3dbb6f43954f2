// The group commands of mosquitto's dynamic-security plugin, and the anonymous group: the group whose roles apply to
// clients that connect without a user name.

extension DynamicSecurityState {
    mutating func createGroup(_ command: inout DynamicCommand) {
        guard let name = command.name("groupname", "Group name"),
            let textName = command.optionalText("textname", error: "Invalid/missing textname"),
            let textDescription = command.optionalText("textdescription", error: "Invalid/missing textdescription")
        else { return }
        guard group(name) == nil else {
            command.reply("Group already exists")
            return
        }
        var group = DynamicGroup(name: name)
        group.textName = textName
        group.textDescription = textDescription
        guard readRoles(&command, into: &group.roles, invalid: "Internal error") else { return }
        groups[name] = group
        command.markChanged()
        command.reply()
    }

    /// The anonymous group's deletion leaves anonymous clients with the defaults only.
    mutating func deleteGroup(_ command: inout DynamicCommand) {
        guard let name = command.name("groupname", "Group name") else { return }
        guard let group = group(name) else {
            command.reply("Group not found")
            return
        }
        let affected = affected(byGroup: name)
        for member in group.clients { clients[member.name]?.groups.remove(name: name) }
        groups[name] = nil
        if let anonymousGroup, anonymousGroup.utf8.elementsEqual(name.utf8) { self.anonymousGroup = nil }
        command.markChanged(disconnecting: affected)
        command.reply()
    }

    mutating func getGroup(_ command: inout DynamicCommand) {
        guard let name = command.name("groupname", "Group name") else { return }
        guard let group = group(name) else {
            command.reply("Group not found")
            return
        }
        command.reply(data: .object([("group", groupJSON(group, forFile: false))]))
    }

    /// Replaces only what the request names. The members before and after the change are both disconnected (mosquitto
    /// disconnects only those after, leaving removed members with rules they no longer have until they reconnect).
    mutating func modifyGroup(_ command: inout DynamicCommand) {
        guard let name = command.name("groupname", "Group name") else { return }
        guard var group = group(name) else {
            command.reply("Group not found")
            return
        }
        let json = command.json
        if let text = json.string("textname").value { group.textName = text }
        if let text = json.string("textdescription").value { group.textDescription = text }
        guard readRoles(&command, into: &group.roles, invalid: Self.malformedRoles) else { return }
        var affected = affected(byGroup: name)
        var staged = self
        staged.groups[name] = group
        if let elements = json.member("clients")?.arrayValue {
            for member in group.clients { staged.clients[member.name]?.groups.remove(name: name) }
            staged.groups[name]?.clients = []
            for element in elements {
                guard element.isObject, let username = element.string("username").value else { continue }
                _ = staged.addToGroup(username: username, group: name, priority: element.int("priority", default: -1))
            }
        }
        self = staged
        affected.append(contentsOf: self.affected(byGroup: name))
        command.markChanged(disconnecting: affected)
        command.reply()
    }

    mutating func addGroupClient(_ command: inout DynamicCommand) {
        guard let username = command.name("username", "Username"), let name = command.name("groupname", "Group name")
        else { return }
        guard client(username) != nil else {
            command.reply("Client not found")
            return
        }
        guard group(name) != nil else {
            command.reply("Group not found")
            return
        }
        guard addToGroup(username: username, group: name, priority: command.json.int("priority", default: -1)) else {
            command.reply("Client is already in this group")
            return
        }
        command.markChanged(disconnecting: [.username(username)])
        command.reply()
    }

    mutating func removeGroupClient(_ command: inout DynamicCommand) {
        guard let username = command.name("username", "Username"), let name = command.name("groupname", "Group name")
        else { return }
        guard client(username) != nil else {
            command.reply("Client not found")
            return
        }
        guard group(name) != nil else {
            command.reply("Group not found")
            return
        }
        groups[name]?.clients.remove(name: username)
        clients[username]?.groups.remove(name: name)
        command.markChanged(disconnecting: [.username(username)])
        command.reply()
    }

    mutating func addGroupRole(_ command: inout DynamicCommand) {
        guard let name = command.name("groupname", "Group name"), let rolename = command.name("rolename", "Role name")
        else { return }
        let priority = command.json.int("priority", default: -1)
        guard let group = group(name) else {
            command.reply("Group not found")
            return
        }
        guard role(rolename) != nil else {
            command.reply("Role not found")
            return
        }
        guard !group.roles.contains(name: rolename) else {
            command.reply("Group is already in this role")
            return
        }
        groups[name]?.roles.insertOrdered(Link(name: rolename, priority: priority))
        command.markChanged(disconnecting: affected(byGroup: name))
        command.reply()
    }

    mutating func removeGroupRole(_ command: inout DynamicCommand) {
        guard let name = command.name("groupname", "Group name"), let rolename = command.name("rolename", "Role name")
        else { return }
        guard group(name) != nil else {
            command.reply("Group not found")
            return
        }
        guard role(rolename) != nil else {
            command.reply("Role not found")
            return
        }
        groups[name]?.roles.remove(name: rolename)
        command.markChanged(disconnecting: affected(byGroup: name))
        command.reply()
    }

    mutating func setAnonymousGroup(_ command: inout DynamicCommand) {
        guard let name = command.name("groupname", "Group name") else { return }
        guard group(name) != nil else {
            command.reply("Group not found")
            return
        }
        anonymousGroup = name
        command.markChanged(disconnecting: [.anonymous])
        command.reply()
    }
}
