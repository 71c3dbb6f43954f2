// The JSON requests on `$CONTROL/dynamic-security/v1` (a `commands` array) and the answer (a `responses` array), with
// mosquitto 2.0's command names and error strings, so `mosquitto_ctrl dynsec …` prints the same.
import MQTTCodec
import MidgeCore

/// One command of a request, and what running it produced.
struct DynamicCommand {
    /// The name as mosquitto answers it; for an unknown command, as it was sent.
    let name: String
    let json: JSONValue
    let correlationData: String?
    var responses: [JSONOutput] = []
    /// Set by commands that changed the state, so it is written to the file.
    var changed = false
    var disconnect: [ControlReply.Disconnect] = []

    init(name: String, json: JSONValue, correlationData: String?) {
        self.name = name
        self.json = json
        self.correlationData = correlationData
    }

    /// The answer without data: success, or the error text `mosquitto_ctrl` prints after "Error: ".
    mutating func reply(_ error: String? = nil) {
        responses.append(Self.reply(command: name, error: error, correlationData: correlationData))
    }

    mutating func reply(data: JSONOutput) {
        var members: [(String, JSONOutput)] = [("command", .string(name)), ("data", data)]
        if let correlationData { members.append(("correlationData", .string(correlationData))) }
        responses.append(.object(members))
    }

    static func reply(command: String, error: String?, correlationData: String?) -> JSONOutput {
        var members: [(String, JSONOutput)] = [("command", .string(command))]
        if let error { members.append(("error", .string(error))) }
        if let correlationData { members.append(("correlationData", .string(correlationData))) }
        return .object(members)
    }

    /// A required name (`username`, `rolename`, …): its value, or after replying with mosquitto's error, nil.
    mutating func name(_ field: String, _ label: String) -> String? {
        guard let value = json.string(field).value else {
            reply("Invalid/missing \(field)")
            return nil
        }
        guard Self.isValidText(value) else {
            reply("\(label) not valid UTF-8")
            return nil
        }
        return value
    }

    /// An optional text field: `.some(nil)` when absent, nil after replying with mosquitto's error for a non-string.
    mutating func optionalText(_ field: String, error: String) -> String?? {
        switch json.string(field) {
        case .value(let text): return .some(text)
        case .missing: return .some(nil)
        case .invalid:
            reply(error)
            return nil
        }
    }

    /// mosquitto checks names with its MQTT UTF-8 rules (no U+0000, no surrogates); the JSON reader already refused
    /// invalid UTF-8 itself.
    static func isValidText(_ text: String) -> Bool { UTF8Validation.isValidMQTTString(Array(text.utf8)) }

    /// `createClient | username=alice`: the command and the names it was given; never a password.
    var logLine: String {
        var line = name
        for key in ["username", "groupname", "rolename", "clientid", "acltype", "topic", "priority", "allow"] {
            switch json.member(key) {
            case .string(let text)?: line += " | \(key)=\(text)"
            case .number?: line += " | \(key)=\(json.int(key, default: 0))"
            case .bool(let flag)?: line += " | \(key)=\(flag)"
            default: break
            }
        }
        return line
    }

    mutating func markChanged(disconnecting targets: [ControlReply.Disconnect] = []) {
        changed = true
        disconnect.append(contentsOf: targets)
    }
}

extension DynamicSecurityState {
    /// Runs a request's payload: every command in order, each answered in `responses`. Malformed input gets
    /// mosquitto's error answer, never more.
    /// `changes` describes each command that changed the state, for the log, as mosquitto logs them.
    mutating func handle(payload: [UInt8]) -> (
        response: JSONOutput, changes: [String], disconnect: [ControlReply.Disconnect]
    ) {
        var responses: [JSONOutput] = []
        var changes: [String] = []
        var disconnect: [ControlReply.Disconnect] = []
        func result() -> (JSONOutput, [String], [ControlReply.Disconnect]) {
            (.object([("responses", .array(responses))]), changes, disconnect)
        }
        guard let tree = JSONValue.parse(payload, maximumDepth: 64) else {
            responses.append(
                DynamicCommand.reply(command: "Unknown command", error: "Payload not valid JSON", correlationData: nil))
            return result()
        }
        guard let commands = tree.member("commands")?.arrayValue else {
            responses.append(
                DynamicCommand.reply(
                    command: "Unknown command", error: "Invalid/missing commands", correlationData: nil))
            return result()
        }
        for element in commands {
            guard element.isObject else {
                responses.append(
                    DynamicCommand.reply(
                        command: "Unknown command", error: "Command not an object", correlationData: nil))
                continue
            }
            guard let name = element.string("command").value else {
                responses.append(
                    DynamicCommand.reply(command: "Unknown command", error: "Missing command", correlationData: nil))
                continue
            }
            let correlation = element.string("correlationData")
            if case .invalid = correlation {
                // mosquitto stops the whole request here.
                responses.append(
                    DynamicCommand.reply(
                        command: name, error: "Invalid correlationData data type.", correlationData: nil))
                break
            }
            var command = DynamicCommand(
                name: Self.canonicalName(name) ?? name, json: element, correlationData: correlation.value)
            run(&command)
            responses.append(contentsOf: command.responses)
            if command.changed { changes.append(command.logLine) }
            disconnect.append(contentsOf: command.disconnect)
        }
        return result()
    }

    static let commandNames = [
        "setDefaultACLAccess", "getDefaultACLAccess",
        "createClient", "deleteClient", "getClient", "listClients", "modifyClient", "setClientPassword", "setClientId",
        "addClientRole", "removeClientRole", "enableClient", "disableClient",
        "addGroupClient", "createGroup", "deleteGroup", "getGroup", "listGroups", "modifyGroup", "removeGroupClient",
        "addGroupRole", "removeGroupRole", "setAnonymousGroup", "getAnonymousGroup",
        "createRole", "getRole", "listRoles", "modifyRole", "deleteRole", "addRoleACL", "removeRoleACL",
    ]

    /// mosquitto matches command names case-insensitively.
    static func canonicalName(_ name: String) -> String? {
        let lowered = name.lowercased()
        return commandNames.first { $0.lowercased() == lowered }
    }

    private mutating func run(_ command: inout DynamicCommand) {
        switch command.name {
        case "setDefaultACLAccess": setDefaultACLAccess(&command)
        case "getDefaultACLAccess": command.reply(data: .object([("acls", defaultAccess.listJSON)]))
        case "createClient": createClient(&command)
        case "deleteClient": deleteClient(&command)
        case "getClient": getClient(&command)
        case "listClients":
            list(&command, key: "clients", names: sortedClients.map(\.username)) {
                client($0).map { clientJSON($0, forFile: false) }
            }
        case "modifyClient": modifyClient(&command)
        case "setClientPassword": setClientPassword(&command)
        case "setClientId": setClientID(&command)
        case "addClientRole": addClientRole(&command)
        case "removeClientRole": removeClientRole(&command)
        case "enableClient": setDisabled(false, &command)
        case "disableClient": setDisabled(true, &command)
        case "addGroupClient": addGroupClient(&command)
        case "createGroup": createGroup(&command)
        case "deleteGroup": deleteGroup(&command)
        case "getGroup": getGroup(&command)
        case "listGroups":
            list(&command, key: "groups", names: sortedGroups.map(\.name)) {
                group($0).map { groupJSON($0, forFile: false) }
            }
        case "modifyGroup": modifyGroup(&command)
        case "removeGroupClient": removeGroupClient(&command)
        case "addGroupRole": addGroupRole(&command)
        case "removeGroupRole": removeGroupRole(&command)
        case "setAnonymousGroup": setAnonymousGroup(&command)
        case "getAnonymousGroup":
            command.reply(data: .object([("group", .object([("groupname", .string(anonymousGroup ?? ""))]))]))
        case "createRole": createRole(&command)
        case "getRole": getRole(&command)
        case "listRoles": list(&command, key: "roles", names: sortedRoles.map(\.name)) { role($0).map(roleJSON) }
        case "modifyRole": modifyRole(&command)
        case "deleteRole": deleteRole(&command)
        case "addRoleACL": addRoleACL(&command)
        case "removeRoleACL": removeRoleACL(&command)
        default: command.reply("Unknown command")
        }
    }

    private mutating func setDefaultACLAccess(_ command: inout DynamicCommand) {
        guard let acls = command.json.member("acls")?.arrayValue else {
            command.reply("Missing/invalid actions array")
            return
        }
        for acl in acls {
            guard let type = acl.string("acltype").value, let allow = acl.bool("allow").value else { continue }
            switch type.lowercased() {
            case "publishclientsend": defaultAccess.publishClientSend = allow
            case "publishclientreceive": defaultAccess.publishClientReceive = allow
            case "subscribe": defaultAccess.subscribe = allow
            case "unsubscribe": defaultAccess.unsubscribe = allow
            default: break
            }
        }
        command.markChanged()
        command.reply()
    }

    /// `listClients`, `listGroups`, `listRoles`: names, or with `verbose` whole entries; `count` -1 for all.
    private func list(
        _ command: inout DynamicCommand, key: String, names: [String], entry: (String) -> JSONOutput?
    ) {
        let verbose = command.json.bool("verbose", default: false)
        var count = command.json.int("count", default: -1)
        let offset = command.json.int("offset", default: 0)
        var listed: [JSONOutput] = []
        for (index, name) in names.enumerated() where index >= offset {
            listed.append(verbose ? entry(name) ?? .string(name) : .string(name))
            if count >= 0 {
                count -= 1
                if count <= 0 { break }
            }
        }
        command.reply(data: .object([("totalCount", .int(names.count)), (key, .array(listed))]))
    }

    // MARK: Who is affected by a change

    /// Everyone a group's rules apply to: its members, and with the anonymous group, the clients without a user name.
    func affected(byGroup name: String) -> [ControlReply.Disconnect] {
        var targets: [ControlReply.Disconnect] = group(name)?.clients.map { .username($0.name) } ?? []
        if let anonymousGroup, anonymousGroup.utf8.elementsEqual(name.utf8) { targets.append(.anonymous) }
        return targets
    }

    /// Everyone a role's rules apply to: the clients that have it and the members of the groups that have it.
    func affected(byRole name: String) -> [ControlReply.Disconnect] {
        var targets: [ControlReply.Disconnect] = clients.values.filter { $0.roles.contains(name: name) }
            .map { .username($0.username) }
        for group in groups.values where group.roles.contains(name: name) {
            targets.append(contentsOf: affected(byGroup: group.name))
        }
        return targets
    }

    /// A request's `roles` array (`createClient`, `createGroup`, `modify…`): nil when absent, or the error to reply.
    static let malformedRoles = "'roles' not an array or missing/invalid rolename"

    /// A create or modify command's `roles` into `roles`, left as they are when the command names none. False after
    /// answering the error; `invalid` is what mosquitto answers that command for a malformed list.
    func readRoles(_ command: inout DynamicCommand, into roles: inout [Link], invalid: String) -> Bool {
        switch roleLinks(command.json) {
        case .success(let links):
            if let links { roles = links }
            return true
        case .failure(.roleNotFound):
            command.reply("Role not found")
            return false
        case .failure(.invalid):
            command.reply(invalid)
            return false
        }
    }

    func roleLinks(_ json: JSONValue) -> Result<[Link]?, RoleListError> {
        guard let member = json.member("roles") else { return .success(nil) }
        guard let elements = member.arrayValue else { return .failure(.invalid) }
        var links: [Link] = []
        for element in elements {
            guard let name = element.string("rolename").value else { return .failure(.invalid) }
            guard role(name) != nil else { return .failure(.roleNotFound) }
            if !links.contains(name: name) {
                links.insertOrdered(Link(name: name, priority: element.int("priority", default: -1)))
            }
        }
        return .success(links)
    }

    enum RoleListError: Error {
        case invalid, roleNotFound
    }
}

extension DefaultAccess {
    var listJSON: JSONOutput {
        .array(
            [
                ("publishClientSend", publishClientSend), ("publishClientReceive", publishClientReceive),
                ("subscribe", subscribe), ("unsubscribe", unsubscribe),
            ].map { .object([("acltype", .string($0.0)), ("allow", .bool($0.1))]) })
    }
}
