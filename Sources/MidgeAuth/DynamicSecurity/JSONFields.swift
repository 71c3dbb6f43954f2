// Reading mosquitto's dynamic-security JSON the way its plugin does (cJSON): member names match case-insensitively, a
// member of the wrong type counts as invalid, integers are truncated.

extension JSONValue {
    /// The member named `name`, compared case-insensitively as cJSON's `cJSON_GetObjectItem` does (which is why the
    /// `textName` that `mosquitto_ctrl dynsec init` writes is read as `textname`).
    func member(_ name: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        if let exact = members[name] { return exact }
        let lowered = name.lowercased()
        // Several spellings of one name are a hand-made file's mistake; the smallest key wins, so the answer is stable.
        return members.keys.filter { $0.lowercased() == lowered }.min(by: precedes).flatMap { members[$0] }
    }

    var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    var boolValue: Bool? {
        if case .bool(let flag) = self { return flag }
        return nil
    }

    /// A number as C's `int`: truncated toward zero and clamped, as cJSON's `valueint`.
    var intValue: Int? {
        guard case .number(let value) = self else { return nil }
        if value >= Double(Int32.max) { return Int(Int32.max) }
        if value <= Double(Int32.min) { return Int(Int32.min) }
        return Int(value)
    }

    var arrayValue: [JSONValue]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    var isObject: Bool {
        if case .object = self { return true }
        return false
    }
}

/// A field's value, or why it cannot be used (`json_get_string` and friends in mosquitto).
enum Field<Value> {
    case value(Value)
    case missing
    case invalid

    var value: Value? {
        if case .value(let value) = self { return value }
        return nil
    }
}

extension JSONValue {
    func string(_ name: String) -> Field<String> {
        guard let member = member(name) else { return .missing }
        return member.stringValue.map(Field.value) ?? .invalid
    }

    func int(_ name: String) -> Field<Int> {
        guard let member = member(name) else { return .missing }
        return member.intValue.map(Field.value) ?? .invalid
    }

    func bool(_ name: String) -> Field<Bool> {
        guard let member = member(name) else { return .missing }
        return member.boolValue.map(Field.value) ?? .invalid
    }

    /// An optional integer: the default when missing or not a number, as mosquitto's `json_get_int(…, true, default)`
    /// leaves it.
    func int(_ name: String, default fallback: Int) -> Int { int(name).value ?? fallback }

    func bool(_ name: String, default fallback: Bool) -> Bool { bool(name).value ?? fallback }
}
