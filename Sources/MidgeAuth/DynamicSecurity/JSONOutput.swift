// A JSON value built to be written (RFC 8259), with object members in the order given: the dynamic security file and
// its command responses are read by people and by mosquitto_ctrl, and a stable order keeps diffs of the file small.

indirect enum JSONOutput: Sendable {
    case object([(String, JSONOutput)])
    case array([JSONOutput])
    case string(String)
    case int(Int)
    case bool(Bool)

    /// One line, no blanks: what goes on the response topic.
    var compact: String {
        var out = ""
        write(into: &out, indent: nil, depth: 0)
        return out
    }

    /// Tab-indented, one member a line, ending with a newline: the file's layout, close to cJSON's.
    var pretty: String {
        var out = ""
        write(into: &out, indent: "\t", depth: 0)
        out += "\n"
        return out
    }

    private func write(into out: inout String, indent: String?, depth: Int) {
        func newline(_ depth: Int) {
            guard let indent else { return }
            out += "\n"
            out += String(repeating: indent, count: depth)
        }
        switch self {
        case .object(let members):
            out += "{"
            for (index, (key, value)) in members.enumerated() {
                if index > 0 { out += "," }
                newline(depth + 1)
                JSONOutput.quote(key, into: &out)
                out += indent == nil ? ":" : ": "
                value.write(into: &out, indent: indent, depth: depth + 1)
            }
            if !members.isEmpty { newline(depth) }
            out += "}"
        case .array(let elements):
            out += "["
            for (index, element) in elements.enumerated() {
                if index > 0 { out += "," }
                newline(depth + 1)
                element.write(into: &out, indent: indent, depth: depth + 1)
            }
            if !elements.isEmpty { newline(depth) }
            out += "]"
        case .string(let text): JSONOutput.quote(text, into: &out)
        case .int(let value): out += String(value)
        case .bool(let value): out += value ? "true" : "false"
        }
    }

    private static func quote(_ text: String, into out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{00}"..."\u{1F}":
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}
