// mosquitto 2.0's `dynamic-security.json` (what `mosquitto_ctrl dynsec init` writes and the plugin saves after every
// change): read as the plugin reads it, written in the same shape.
import MidgeText

extension DynamicSecurityState {
    /// The file's state. As mosquitto: an empty file is an empty state, and entries that cannot be used (a client
    /// whose hash does not decode, a role link to a role that does not exist) are left out. Not JSON, or a top-level
    /// member of the wrong type, is an error: a half-read file could be the one that denies something.
    static func load(bytes: [UInt8], source: String) throws(AuthFileError) -> DynamicSecurityState {
        var state = DynamicSecurityState()
        if bytes.allSatisfy({ [0x20, 0x09, 0x0A, 0x0D].contains($0) }) { return state }
        guard let tree = JSONValue.parse(bytes, maximumDepth: 64), tree.isObject else {
            throw AuthFileError(file: source, line: nil, message: "not a JSON object (a dynamic security file)")
        }
        func list(_ name: String) throws(AuthFileError) -> [JSONValue] {
            guard let member = tree.member(name) else { return [] }
            guard let elements = member.arrayValue else {
                throw AuthFileError(file: source, line: nil, message: "\"\(name)\" is not an array")
            }
            return elements
        }
        if let access = tree.member("defaultACLAccess"), access.isObject {
            state.defaultAccess = DefaultAccess(
                publishClientSend: access.bool("publishClientSend").value ?? false,
                publishClientReceive: access.bool("publishClientReceive").value ?? false,
                subscribe: access.bool("subscribe").value ?? false,
                unsubscribe: access.bool("unsubscribe").value ?? false)
        }
        for element in try list("roles") {
            guard let name = element.string("rolename").value, state.role(name) == nil else { continue }
            var role = DynamicRole(name: name)
            role.textName = element.string("textname").value
            role.textDescription = element.string("textdescription").value
            role.acls = aclLists(element.member("acls")?.arrayValue ?? [])
            state.roles[name] = role
        }
        for element in try list("clients") {
            guard let username = element.string("username").value, state.client(username) == nil else { continue }
            var client = DynamicClient(username: username)
            client.disabled = element.bool("disabled").value ?? false
            if case .value(let saltText) = element.string("salt"),
                case .value(let hashText) = element.string("password"),
                case .value(let iterations) = element.int("iterations")
            {
                guard iterations >= 1, let salt = Base64.decode(Array(saltText.utf8)),
                    PasswordHash.acceptedSaltLengths.contains(salt.count),
                    let hash = Base64.decode(Array(hashText.utf8)),
                    hash.count == PasswordHash.hashLength
                else { continue }
                client.password = PasswordHash(kind: .pbkdf2SHA512(iterations: iterations), salt: salt, hash: hash)
            }
            client.clientID = element.string("clientid").value
            client.textName = element.string("textname").value
            client.textDescription = element.string("textdescription").value
            for link in element.member("roles")?.arrayValue ?? [] {
                guard let name = link.string("rolename").value, state.role(name) != nil,
                    !client.roles.contains(name: name)
                else { continue }
                client.roles.insertOrdered(Link(name: name, priority: link.int("priority", default: -1)))
            }
            state.clients[username] = client
        }
        for element in try list("groups") {
            guard let name = element.string("groupname").value, state.group(name) == nil else { continue }
            var group = DynamicGroup(name: name)
            group.textName = element.string("textname").value
            group.textDescription = element.string("textdescription").value
            for link in element.member("roles")?.arrayValue ?? [] {
                guard let role = link.string("rolename").value, state.role(role) != nil,
                    !group.roles.contains(name: role)
                else { continue }
                group.roles.insertOrdered(Link(name: role, priority: link.int("priority", default: -1)))
            }
            state.groups[name] = group
            for member in element.member("clients")?.arrayValue ?? [] {
                guard let username = member.string("username").value else { continue }
                _ = state.addToGroup(username: username, group: name, priority: member.int("priority", default: -1))
            }
        }
        if let name = tree.member("anonymousGroup")?.stringValue, state.group(name) != nil {
            state.anonymousGroup = name
        }
        return state
    }

    /// A role's `acls` array sorted into its six lists; entries with an unknown type or no topic are skipped.
    static func aclLists(_ elements: [JSONValue]) -> [ACLType: [RoleACL]] {
        var lists: [ACLType: [RoleACL]] = [:]
        for element in elements {
            guard let typeName = element.string("acltype").value, let type = ACLType(name: typeName),
                let topic = element.string("topic").value
            else { continue }
            let acl = RoleACL(
                topic: topic, priority: element.int("priority", default: 0),
                allow: element.bool("allow", default: false))
            lists[type, default: []].insertOrdered(acl)
        }
        return lists
    }

    /// Puts a client in a group on both sides. False when either does not exist or it is already a member.
    mutating func addToGroup(username: String, group name: String, priority: Int) -> Bool {
        guard var client = client(username), var group = group(name), !group.clients.contains(name: username) else {
            return false
        }
        group.clients.insertOrdered(Link(name: username, priority: priority))
        client.groups.insertOrdered(Link(name: name, priority: priority))
        groups[name] = group
        clients[username] = client
        return true
    }

    // MARK: - Writing

    /// The whole file, in the order mosquitto writes it.
    var fileJSON: JSONOutput {
        var members: [(String, JSONOutput)] = [
            ("defaultACLAccess", defaultAccess.json),
            ("clients", .array(sortedClients.map { clientJSON($0, forFile: true) })),
            ("groups", .array(sortedGroups.map { groupJSON($0, forFile: true) })),
        ]
        if let anonymousGroup { members.append(("anonymousGroup", .string(anonymousGroup))) }
        members.append(("roles", .array(sortedRoles.map(roleJSON))))
        return .object(members)
    }

    var sortedClients: [DynamicClient] { clients.values.sorted { precedes($0.username, $1.username) } }
    var sortedGroups: [DynamicGroup] { groups.values.sorted { precedes($0.name, $1.name) } }
    var sortedRoles: [DynamicRole] { roles.values.sorted { precedes($0.name, $1.name) } }

    /// A client as the file holds it (`forFile`: with its hash) or as `getClient` shows it (with its groups).
    func clientJSON(_ client: DynamicClient, forFile: Bool) -> JSONOutput {
        var members: [(String, JSONOutput)] = [("username", .string(client.username))]
        if let clientID = client.clientID { members.append(("clientid", .string(clientID))) }
        if let text = client.textName { members.append(("textname", .string(text))) }
        if let text = client.textDescription { members.append(("textdescription", .string(text))) }
        if client.disabled { members.append(("disabled", .bool(true))) }
        members.append(("roles", links(client.roles, key: "rolename")))
        if forFile {
            if let password = client.password, case .pbkdf2SHA512(let iterations) = password.kind {
                members.append(("password", .string(Base64.encode(password.hash))))
                members.append(("salt", .string(Base64.encode(password.salt))))
                members.append(("iterations", .int(iterations)))
            }
        } else {
            members.append(("groups", links(client.groups, key: "groupname")))
        }
        return .object(members)
    }

    /// A group as the file holds it, or as `getGroup` shows it: members first and without their priorities, as
    /// mosquitto answers.
    func groupJSON(_ group: DynamicGroup, forFile: Bool) -> JSONOutput {
        var members: [(String, JSONOutput)] = [("groupname", .string(group.name))]
        if let text = group.textName { members.append(("textname", .string(text))) }
        if let text = group.textDescription { members.append(("textdescription", .string(text))) }
        let roles = links(group.roles, key: "rolename")
        if forFile {
            members.append(("roles", roles))
            members.append(("clients", links(group.clients, key: "username")))
        } else {
            members.append(("clients", .array(group.clients.map { .object([("username", .string($0.name))]) })))
            members.append(("roles", roles))
        }
        return .object(members)
    }

    func roleJSON(_ role: DynamicRole) -> JSONOutput {
        var members: [(String, JSONOutput)] = [("rolename", .string(role.name))]
        if let text = role.textName { members.append(("textname", .string(text))) }
        if let text = role.textDescription { members.append(("textdescription", .string(text))) }
        var acls: [JSONOutput] = []
        for type in ACLType.allCases {
            for acl in role.acls[type] ?? [] {
                acls.append(
                    .object([
                        ("acltype", .string(type.rawValue)), ("topic", .string(acl.topic)),
                        ("priority", .int(acl.priority)), ("allow", .bool(acl.allow)),
                    ]))
            }
        }
        members.append(("acls", .array(acls)))
        return .object(members)
    }

    /// mosquitto leaves out the default priority, -1.
    private func links(_ links: [Link], key: String) -> JSONOutput {
        .array(
            links.map { link in
                var members: [(String, JSONOutput)] = [(key, .string(link.name))]
                if link.priority != -1 { members.append(("priority", .int(link.priority))) }
                return .object(members)
            })
    }
}

extension DefaultAccess {
    var json: JSONOutput {
        .object([
            ("publishClientSend", .bool(publishClientSend)), ("publishClientReceive", .bool(publishClientReceive)),
            ("subscribe", .bool(subscribe)), ("unsubscribe", .bool(unsubscribe)),
        ])
    }
}
