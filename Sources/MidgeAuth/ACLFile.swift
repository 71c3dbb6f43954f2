// mosquitto 2.0's `acl_file`: per-user `topic` rules and `pattern` rules with %c/%u, checked on publish
// and on every delivery (MQTT 3.1.1 §4.7 topic matching; §5.4.2 leaves authorization to the server).
import MQTTCodec
import MidgeCore

/// The rules of a mosquitto-format ACL file, with mosquitto 2.0's semantics:
///
///     # Before any `user` line: rules for clients that connected without a user name.
///     topic read $SYS/#
///
///     user roger              # rules for this user name only, until the next `user` line
///     topic foo/bar           # no access word: readwrite
///     topic deny foo/secret   # `deny` wins over every grant in the same list
///
///     pattern write $SYS/broker/connection/%c/state   # for everyone, wherever it appears;
///                                                      # %c = client id, %u = user name
///
/// A check looks at the client's own list first (its `user` block, or the top-of-file list when it has
/// no user name); a matching `deny` refuses, a matching rule with the access grants. Then, if there are
/// patterns, at the patterns the same way. Nothing matching means refused, and an empty file refuses
/// everything (mosquitto's fix for CVE-2018-12550). A `$` topic is only matched by rules that start
/// with `$` [MQTT-4.7.2-1], so `topic #` never grants `$SYS`.
public final class ACLFile: AccessControl {
    struct Access: OptionSet, Sendable {
        let rawValue: UInt8
        static let read = Access(rawValue: 1)
        static let write = Access(rawValue: 2)
        static let readWrite: Access = [.read, .write]
        /// `deny`: no access bit; matching it refuses.
        static let deny: Access = []
    }

    struct TopicRule: Sendable {
        let filter: TopicFilter
        let access: Access
    }

    struct PatternRule: Sendable {
        /// The filter as written, `%c`/`%u` unexpanded; it was valid as a filter with them in place.
        let template: [UInt8]
        let access: Access
        let clientIDCount: Int
        let usernameCount: Int
    }

    struct UserRules: Sendable {
        let username: [UInt8]
        var rules: [TopicRule]
    }

    /// Top-of-file `topic` lines: what clients without a user name may do.
    private let anonymousRules: [TopicRule]
    /// Keyed by `String` for an allocation-free lookup on every delivery; each bucket keeps byte-distinct
    /// spellings apart because mosquitto compares user names as bytes (see `rules(for:)`).
    private let userRules: [String: [UserRules]]
    private let patterns: [PatternRule]

    public convenience init(path: String) throws(AuthFileError) {
        try self.init(bytes: TextLines.read(path: path), source: path)
    }

    public convenience init(text: String, source: String) throws(AuthFileError) {
        try self.init(bytes: Array(text.utf8), source: source)
    }

    init(bytes: [UInt8], source: String) throws(AuthFileError) {
        var anonymous: [TopicRule] = []
        var users: [String: [UserRules]] = [:]
        var patterns: [PatternRule] = []
        var currentUser: [UInt8]? = nil

        // mosquitto puts each `deny` at the front of its list, so a deny is seen before any grant.
        func add(_ rule: TopicRule, to list: inout [TopicRule]) {
            if rule.access == .deny { list.insert(rule, at: 0) } else { list.append(rule) }
        }

        for line in TextLines.split(bytes) {
            guard let parsed = try ACLFile.parse(line, source: source) else { continue }
            switch parsed {
            case .user(let name):
                currentUser = name
            case .topic(let rule):
                guard let user = currentUser else {
                    add(rule, to: &anonymous)
                    continue
                }
                let key = String(decoding: user, as: UTF8.self)
                var bucket = users[key, default: []]
                if let index = bucket.firstIndex(where: { $0.username == user }) {
                    add(rule, to: &bucket[index].rules)
                } else {
                    bucket.append(UserRules(username: user, rules: [rule]))
                }
                users[key] = bucket
            case .pattern(let rule):
                if rule.access == .deny { patterns.insert(rule, at: 0) } else { patterns.append(rule) }
            }
        }
        self.anonymousRules = anonymous
        self.userRules = users
        self.patterns = patterns
    }

    enum Line {
        case user([UInt8])
        case topic(TopicRule)
        case pattern(PatternRule)
    }

    /// One line, read as mosquitto 2.0's `aclfile__parse` does: keyword, optional access word, then the
    /// rest of the line (blanks trimmed, inner spaces kept) as the topic or user name.
    static func parse(_ line: TextLine, source: String) throws(AuthFileError) -> Line? {
        func failure(_ message: String) -> AuthFileError {
            AuthFileError(file: source, line: line.number, message: message)
        }
        let content = TextLines.trimmed(line.bytes)
        if content.isEmpty || content.first == UInt8(ascii: "#") { return nil }
        let (keyword, afterKeyword) = splitToken(content)
        switch Array(keyword) {
        case Array("user".utf8):
            let name = TextLines.trimmed(afterKeyword)
            guard !name.isEmpty else { throw failure("missing user name after \"user\"") }
            guard TextLines.string(name) != nil else { throw failure("user name is not valid UTF-8") }
            return .user(Array(name))
        case Array("topic".utf8), Array("pattern".utf8):
            let isPattern = keyword.first == UInt8(ascii: "p")
            let (word, afterWord) = splitToken(afterKeyword)
            guard !word.isEmpty else { throw failure("missing topic after \"\(isPattern ? "pattern" : "topic")\"") }
            let rest = TextLines.trimmed(afterWord)
            let access: Access
            let topic: ArraySlice<UInt8>
            if rest.isEmpty {
                // `topic foo/bar`: the only word is the topic, with read and write access.
                access = .readWrite
                topic = word
            } else {
                switch Array(word) {
                case Array("read".utf8): access = .read
                case Array("write".utf8): access = .write
                case Array("readwrite".utf8): access = .readWrite
                case Array("deny".utf8): access = .deny
                default:
                    throw failure(
                        "unknown access \"\(String(decoding: word, as: UTF8.self))\" "
                            + "(expected read, write, readwrite or deny)")
                }
                topic = rest
            }
            guard let filter = TopicFilter(bytes: Array(topic)) else {
                throw failure("\"\(String(decoding: topic, as: UTF8.self))\" is not a valid topic filter")
            }
            if isPattern {
                return .pattern(
                    PatternRule(
                        template: filter.bytes, access: access,
                        clientIDCount: occurrences(of: "%c", in: filter.bytes),
                        usernameCount: occurrences(of: "%u", in: filter.bytes)))
            }
            return .topic(TopicRule(filter: filter, access: access))
        default:
            throw failure(
                "unknown keyword \"\(String(decoding: keyword, as: UTF8.self))\" (expected topic, pattern or user)")
        }
    }

    /// The first blank-separated word and what follows the blank after it (mosquitto's `strtok_r`).
    private static func splitToken(_ bytes: ArraySlice<UInt8>) -> (ArraySlice<UInt8>, ArraySlice<UInt8>) {
        var start = bytes.startIndex
        while start < bytes.endIndex && isSeparator(bytes[start]) { start += 1 }
        var end = start
        while end < bytes.endIndex && !isSeparator(bytes[end]) { end += 1 }
        let restStart = end < bytes.endIndex ? end + 1 : end
        return (bytes[start..<end], bytes[restStart...])
    }

    /// mosquitto separates words with spaces only; tabs are accepted too so a tab-aligned file reads the
    /// same as it looks.
    private static func isSeparator(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")
    }

    /// Non-overlapping occurrences, counted as mosquitto's `strstr` loop does.
    private static func occurrences(of needle: String, in bytes: [UInt8]) -> Int {
        let pattern = Array(needle.utf8)
        var count = 0
        var index = 0
        while index + pattern.count <= bytes.count {
            if bytes[index..<(index + pattern.count)].elementsEqual(pattern) {
                count += 1
                index += pattern.count
            } else {
                index += 1
            }
        }
        return count
    }

    // MARK: - Checks

    public var checksDeliveries: Bool { true }

    public func mayPublish(clientID: String, username: String?, topic: TopicName) -> Bool {
        check(.write, clientID: clientID, username: username, topic: topic)
    }

    /// Always true, as in mosquitto 2.0: its ACL check returns success for SUBSCRIBE ("FIXME - implement
    /// ACL subscription strings") and instead checks read access on each message it delivers. Checked
    /// against mosquitto 2.0.11: a subscription to a denied topic is granted its QoS and receives nothing.
    /// `mayReceive` is therefore what keeps `$SYS/#` and everything else to the clients a rule allows.
    public func maySubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool {
        true
    }

    public func mayReceive(clientID: String, username: String?, topic: TopicName) -> Bool {
        check(.read, clientID: clientID, username: username, topic: topic)
    }

    /// mosquitto's `acl__check_dollar` followed by `mosquitto_acl_check_default`.
    func check(_ wanted: Access, clientID: String, username: String?, topic: TopicName) -> Bool {
        // mosquitto checks the reserved `$` topics before any rule (`acl__check_dollar`).
        guard ReservedTopics.permit(topic, writing: wanted == .write) else { return false }

        let ownRules: [TopicRule]
        if let username { ownRules = rules(for: username) } else { ownRules = anonymousRules }
        // A rule that does not start with `$` never matches a `$` topic: `TopicFilter.matches` refuses
        // a leading wildcard there [MQTT-4.7.2-1] and any other first byte differs from `$`.
        for rule in ownRules where rule.filter.matches(topic) {
            if rule.access == .deny { return false }
            if rule.access.contains(wanted) { return true }
        }

        guard !patterns.isEmpty else { return false }
        // A `+` or `#` in an identity would turn `%c`/`%u` into a wildcard and widen the rule to other
        // clients' topics, so such clients get nothing from patterns at all (mosquitto does the same).
        if let username, ACLFile.containsWildcard(username) { return false }
        if ACLFile.containsWildcard(clientID) { return false }
        for pattern in patterns {
            if pattern.usernameCount > 0 && username == nil { continue }
            if ACLFile.matches(pattern, clientID: clientID, username: username, topic: topic.bytes) {
                if pattern.access == .deny { return false }
                if pattern.access.contains(wanted) { return true }
            }
        }
        return false
    }

    private func rules(for username: String) -> [TopicRule] {
        userRules[username]?.first { $0.username.elementsEqual(username.utf8) }?.rules ?? []
    }

    private static func containsWildcard(_ identity: String) -> Bool {
        identity.utf8.contains { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "#") }
    }

    /// Expands `%c`/`%u` textually, as mosquitto 2.0.11 does (so `q%c` and ids containing `/` work as
    /// there), into stack memory: this runs for every delivery and must not allocate.
    static func matches(_ pattern: PatternRule, clientID: String, username: String?, topic: [UInt8]) -> Bool {
        var clientID = clientID
        var username = username
        let clientBytes = clientID.utf8.count
        let usernameBytes = username?.utf8.count ?? 0
        let template = pattern.template
        let length =
            template.count + pattern.clientIDCount * (clientBytes - 2)
            + (username == nil ? 0 : pattern.usernameCount * (usernameBytes - 2))
        guard length > 0 else { return false }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: length) { buffer -> Bool in
            var out = 0
            var index = 0
            let percent = UInt8(ascii: "%")
            while index < template.count {
                if template[index] == percent && index + 1 < template.count {
                    let next = template[index + 1]
                    if next == UInt8(ascii: "c") {
                        clientID.withUTF8 {
                            for byte in $0 {
                                buffer[out] = byte
                                out += 1
                            }
                        }
                        index += 2
                        continue
                    }
                    if next == UInt8(ascii: "u"), username != nil {
                        username?.withUTF8 {
                            for byte in $0 {
                                buffer[out] = byte
                                out += 1
                            }
                        }
                        index += 2
                        continue
                    }
                }
                buffer[out] = template[index]
                out += 1
                index += 1
            }
            assert(out == length, "BUG: pattern expansion length")
            return TopicFilter.matches(filterBytes: UnsafeBufferPointer(rebasing: buffer[0..<out]), topicBytes: topic)
        }
    }
}
