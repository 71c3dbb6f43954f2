// The dynamic security plugin's data (mosquitto 2.0's clients, groups, roles and default access) and the ACL decision
// made from it: roles by priority, a role's ACLs by priority, the first match deciding.
import MQTTCodec

/// The six kinds of rule a role holds, spelled as mosquitto's JSON spells them.
enum ACLType: String, CaseIterable, Sendable {
    case publishClientSend, publishClientReceive, subscribeLiteral, subscribePattern, unsubscribeLiteral,
        unsubscribePattern

    /// mosquitto compares type names case-insensitively (`strcasecmp`).
    init?(name: String) {
        let lowered = name.lowercased()
        guard let type = ACLType.allCases.first(where: { $0.rawValue.lowercased() == lowered }) else { return nil }
        self = type
    }
}

/// One rule of a role. `filter` is nil for a topic that is not a valid filter (only a hand-edited file can hold
/// one): such a rule never matches.
struct RoleACL: Sendable, Equatable {
    var topic: String
    var filter: TopicFilter?
    var priority: Int
    var allow: Bool

    init(topic: String, priority: Int, allow: Bool) {
        self.topic = topic
        self.filter = TopicFilter(topic)
        self.priority = priority
        self.allow = allow
    }
}

/// A role or group taken by a client or group, with the priority that orders it among the others.
struct Link: Sendable, Equatable {
    var name: String
    var priority: Int
}

struct DynamicClient: Sendable {
    var username: String
    var clientID: String?
    var textName: String?
    var textDescription: String?
    var disabled = false
    /// nil: the client has no password and cannot log in.
    var password: PasswordHash?
    var roles: [Link] = []
    var groups: [Link] = []
}

struct DynamicGroup: Sendable {
    var name: String
    var textName: String?
    var textDescription: String?
    var roles: [Link] = []
    var clients: [Link] = []
}

struct DynamicRole: Sendable {
    var name: String
    var textName: String?
    var textDescription: String?
    var acls: [ACLType: [RoleACL]] = [:]
}

/// What applies when no role decides. mosquitto 2.0 reads a missing entry as deny.
struct DefaultAccess: Sendable, Equatable {
    var publishClientSend = false
    var publishClientReceive = false
    var subscribe = false
    var unsubscribe = false
}

struct DynamicSecurityState: Sendable {
    var clients: [String: DynamicClient] = [:]
    var groups: [String: DynamicGroup] = [:]
    var roles: [String: DynamicRole] = [:]
    var defaultAccess = DefaultAccess()
    var anonymousGroup: String?

    /// mosquitto compares names as bytes; `String` equality is canonical equivalence, so the key alone is not enough.
    func client(_ username: String) -> DynamicClient? {
        guard let client = clients[username], client.username.utf8.elementsEqual(username.utf8) else { return nil }
        return client
    }

    func group(_ name: String) -> DynamicGroup? {
        guard let group = groups[name], group.name.utf8.elementsEqual(name.utf8) else { return nil }
        return group
    }

    func role(_ name: String) -> DynamicRole? {
        guard let role = roles[name], role.name.utf8.elementsEqual(name.utf8) else { return nil }
        return role
    }
}

// MARK: - Ordering

/// mosquitto keeps names in `strcmp` order: byte order.
func precedes(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

extension Array where Element == Link {
    /// Higher priority first, then by name, as mosquitto's role and group lists.
    mutating func insertOrdered(_ link: Link) {
        let index =
            firstIndex {
                $0.priority < link.priority || ($0.priority == link.priority && precedes(link.name, $0.name))
            } ?? count
        insert(link, at: index)
    }

    func contains(name: String) -> Bool { contains { $0.name.utf8.elementsEqual(name.utf8) } }

    mutating func remove(name: String) { removeAll { $0.name.utf8.elementsEqual(name.utf8) } }
}

extension Array where Element == RoleACL {
    /// Higher priority first; among equals, the earlier added first.
    mutating func insertOrdered(_ acl: RoleACL) {
        let index = firstIndex { $0.priority < acl.priority } ?? count
        insert(acl, at: index)
    }
}

// MARK: - ACL decisions

/// What a client asks to do, with the topic or filter it names.
enum DynamicAccessRequest {
    case publish(TopicName)
    case receive(TopicName)
    case subscribe(TopicFilter)
    case unsubscribe(TopicFilter)

    var bytes: [UInt8] {
        switch self {
        case .publish(let topic), .receive(let topic): topic.bytes
        case .subscribe(let filter), .unsubscribe(let filter): filter.bytes
        }
    }
}

extension DynamicSecurityState {
    /// mosquitto's order: the client's roles, then its groups' roles (groups by priority); a client without a user
    /// name gets the anonymous group's. A user name that is not a client gets nothing, whatever the defaults say.
    /// With no decision the default applies, except that `$CONTROL` is never open by default.
    func allows(_ request: DynamicAccessRequest, username: String?) -> Bool {
        if let username {
            guard let client = client(username) else { return false }
            if let decision = decide(request, roles: client.roles) { return decision }
            for link in client.groups {
                guard let group = group(link.name) else { continue }
                if let decision = decide(request, roles: group.roles) { return decision }
            }
        } else if let name = anonymousGroup, let group = group(name) {
            if let decision = decide(request, roles: group.roles) { return decision }
        }
        let allowed: Bool
        switch request {
        case .publish: allowed = defaultAccess.publishClientSend
        case .receive: allowed = defaultAccess.publishClientReceive
        case .subscribe: allowed = defaultAccess.subscribe
        case .unsubscribe: allowed = defaultAccess.unsubscribe
        }
        return allowed && !request.bytes.starts(with: Self.controlPrefix)
    }

    private static let controlPrefix = Array("$CONTROL".utf8)

    private func decide(_ request: DynamicAccessRequest, roles links: [Link]) -> Bool? {
        for link in links {
            guard let role = role(link.name) else { continue }
            switch request {
            case .publish(let topic):
                if let acl = role.acls[.publishClientSend]?.first(where: { $0.filter?.matches(topic) ?? false }) {
                    return acl.allow
                }
            case .receive(let topic):
                if let acl = role.acls[.publishClientReceive]?.first(where: { $0.filter?.matches(topic) ?? false }) {
                    return acl.allow
                }
            case .subscribe(let filter):
                if let decision = decide(
                    filter, literal: role.acls[.subscribeLiteral], pattern: role.acls[.subscribePattern])
                {
                    return decision
                }
            case .unsubscribe(let filter):
                if let decision = decide(
                    filter, literal: role.acls[.unsubscribeLiteral], pattern: role.acls[.unsubscribePattern])
                {
                    return decision
                }
            }
        }
        return nil
    }

    /// Within a role a literal rule is looked at before any pattern, whatever their priorities.
    private func decide(_ filter: TopicFilter, literal: [RoleACL]?, pattern: [RoleACL]?) -> Bool? {
        if let acl = literal?.first(where: { $0.topic.utf8.elementsEqual(filter.bytes) }) { return acl.allow }
        if let acl = pattern?.first(where: { SubscriptionPattern.covers(Array($0.topic.utf8), filter.bytes) }) {
            return acl.allow
        }
        return nil
    }
}

/// Whether a `subscribePattern` (or `unsubscribePattern`) rule covers a subscription filter, level by level: `+` in
/// the rule covers any one level of the filter (a `+` included), a trailing `#` covers whatever follows, and a filter
/// ending in `#` is only covered by a rule ending in `#`. A rule of just `#` covers everything, `$` filters too, as in
/// mosquitto.
enum SubscriptionPattern {
    static func covers(_ rule: [UInt8], _ filter: [UInt8]) -> Bool {
        if rule == [UInt8(ascii: "#")] { return true }
        let (ruleLevels, ruleHash) = levels(rule)
        let (filterLevels, filterHash) = levels(filter)
        if filterHash && !ruleHash { return false }
        if ruleLevels.count > filterLevels.count { return false }
        if filterLevels.count > ruleLevels.count && !ruleHash { return false }
        let plus: ArraySlice<UInt8> = [UInt8(ascii: "+")]
        for (index, level) in filterLevels.enumerated() where index < ruleLevels.count {
            guard ruleLevels[index] == plus || ruleLevels[index] == level else { return false }
        }
        return true
    }

    /// The levels before a trailing `#` (`a/#` and `a` both give `[a]`, `#` gives `[""]`), and whether it was there.
    private static func levels(_ bytes: [UInt8]) -> ([ArraySlice<UInt8>], Bool) {
        let slash = UInt8(ascii: "/")
        let hash = UInt8(ascii: "#")
        var body = bytes[...]
        var hasHash = false
        if body.count == 1 && body.first == hash {
            body = body.dropLast()
            hasHash = true
        } else if body.count > 1 && body.last == hash && body[body.endIndex - 2] == slash {
            body = body.dropLast(2)
            hasHash = true
        }
        return (body.split(separator: slash, omittingEmptySubsequences: false), hasHash)
    }
}
