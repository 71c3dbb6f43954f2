// The client commands of mosquitto's dynamic-security plugin: create, delete, enable and disable, passwords, client
// ids, roles. A change to what a client may do disconnects its connections, as mosquitto does, so they log in again
// under the new rules (and subscriptions are checked again).

extension DynamicSecurityState {
    mutating func createClient(_ command: inout DynamicCommand) {
        guard let username = command.name("username", "Username"),
            let password = command.optionalText("password", error: "Invalid/missing password"),
            let clientID = command.optionalText("clientid", error: "Invalid/missing client id"),
            let textName = command.optionalText("textname", error: "Invalid/missing textname"),
            let textDescription = command.optionalText("textdescription", error: "Invalid/missing textdescription")
        else { return }
        if let clientID, !DynamicCommand.isValidText(clientID) {
            command.reply("Client ID not valid UTF-8")
            return
        }
        guard client(username) == nil else {
            command.reply("Client already exists")
            return
        }
        var client = DynamicClient(username: username)
        client.textName = textName
        client.textDescription = textDescription
        client.password = password.map { PasswordHash.make(password: Array($0.utf8)) }
        if let clientID, !clientID.isEmpty { client.clientID = clientID }
        guard readRoles(&command, into: &client.roles, invalid: Self.malformedRoles) else { return }
        var staged = self
        staged.clients[username] = client
        for element in command.json.member("groups")?.arrayValue ?? [] {
            guard element.isObject, let group = element.string("groupname").value else { continue }
            guard staged.group(group) != nil else {
                command.reply("Group not found")
                return
            }
            _ = staged.addToGroup(username: username, group: group, priority: element.int("priority", default: -1))
        }
        self = staged
        command.markChanged()
        command.reply()
    }

    mutating func deleteClient(_ command: inout DynamicCommand) {
        guard let username = command.json.string("username").value else {
            command.reply("Invalid/missing username")
            return
        }
        guard let client = client(username) else {
            command.reply("Client not found")
            return
        }
        for link in client.groups { groups[link.name]?.clients.remove(name: username) }
        clients[username] = nil
        command.markChanged(disconnecting: [.username(username)])
        command.reply()
    }

    mutating func getClient(_ command: inout DynamicCommand) {
        guard let username = command.name("username", "Username") else { return }
        guard let client = client(username) else {
            command.reply("Client not found")
            return
        }
        command.reply(data: .object([("client", clientJSON(client, forFile: false))]))
    }

    /// `enableClient` and `disableClient`; disabling also ends the client's connections.
    mutating func setDisabled(_ disabled: Bool, _ command: inout DynamicCommand) {
        guard let username = command.name("username", "Username") else { return }
        guard client(username) != nil else {
            command.reply("Client not found")
            return
        }
        clients[username]?.disabled = disabled
        command.markChanged(disconnecting: disabled ? [.username(username)] : [])
        command.reply()
    }

    mutating func setClientID(_ command: inout DynamicCommand) {
        guard let username = command.name("username", "Username"),
            let clientID = command.optionalText("clientid", error: "Invalid/missing client ID")
        else { return }
        if let clientID, !DynamicCommand.isValidText(clientID) {
            command.reply("Client ID not valid UTF-8")
            return
        }
        guard client(username) != nil else {
            command.reply("Client not found")
            return
        }
        clients[username]?.clientID = clientID?.isEmpty == false ? clientID : nil
        command.markChanged(disconnecting: [.username(username)])
        command.reply()
    }

    mutating func setClientPassword(_ command: inout DynamicCommand) {
        guard let username = command.name("username", "Username") else { return }
        guard let password = command.json.string("password").value else {
            command.reply("Invalid/missing password")
            return
        }
        guard !password.isEmpty else {
            command.reply("Empty password is not allowed")
            return
        }
        guard client(username) != nil else {
            command.reply("Client not found")
            return
        }
        clients[username]?.password = PasswordHash.make(password: Array(password.utf8))
        command.markChanged(disconnecting: [.username(username)])
        command.reply()
    }

    /// Changes only what the request names. Unlike mosquitto, which keeps the fields it changed before finding a
    /// role that does not exist, a refused request changes nothing.
    mutating func modifyClient(_ command: inout DynamicCommand) {
        guard let username = command.name("username", "Username") else { return }
        guard var client = client(username) else {
            command.reply("Client not found")
            return
        }
        let json = command.json
        if let clientID = json.string("clientid").value { client.clientID = clientID.isEmpty ? nil : clientID }
        if let password = json.string("password").value, !password.isEmpty {
            client.password = PasswordHash.make(password: Array(password.utf8))
        }
        if let text = json.string("textname").value { client.textName = text }
        if let text = json.string("textdescription").value { client.textDescription = text }
        guard readRoles(&command, into: &client.roles, invalid: Self.malformedRoles) else { return }
        var staged = self
        staged.clients[username] = client
        if let elements = json.member("groups")?.arrayValue {
            for link in client.groups { staged.groups[link.name]?.clients.remove(name: username) }
            staged.clients[username]?.groups = []
            for element in elements {
                guard element.isObject, let group = element.string("groupname").value else { continue }
                _ = staged.addToGroup(username: username, group: group, priority: element.int("priority", default: -1))
            }
        }
        self = staged
        command.markChanged(disconnecting: [.username(username)])
        command.reply()
    }

    mutating func addClientRole(_ command: inout DynamicCommand) {
        guard let username = command.name("username", "Username"), let rolename = command.name("rolename", "Role name")
        else { return }
        let priority = command.json.int("priority", default: -1)
        guard let client = client(username) else {
            command.reply("Client not found")
            return
        }
        guard role(rolename) != nil else {
            command.reply("Role not found")
            return
        }
        guard !client.roles.contains(name: rolename) else {
            // What mosquitto 2.0 answers when the client already has the role.
            command.reply("Internal error")
            return
        }
        clients[username]?.roles.insertOrdered(Link(name: rolename, priority: priority))
        command.markChanged(disconnecting: [.username(username)])
        command.reply()
    }

    mutating func removeClientRole(_ command: inout DynamicCommand) {
        guard let username = command.name("username", "Username"), let rolename = command.name("rolename", "Role name")
        else { return }
        guard client(username) != nil else {
            command.reply("Client not found")
            return
        }
        guard role(rolename) != nil else {
            command.reply("Role not found")
            return
        }
        clients[username]?.roles.remove(name: rolename)
        command.markChanged(disconnecting: [.username(username)])
        command.reply()
    }
}
