// One `key value…` line of the configuration file while it is read: its words, and the readers of its value that
// every part of the parser shares, each failing with the line's file, number and key.

struct ConfigLine {
    let key: String
    let arguments: [String]
    /// The text after the key, spaces kept, for paths, passwords and prefixes.
    let rest: String
    let fileName: String
    let number: Int

    func fail(_ message: String) -> ConfigError {
        ConfigError(fileName: fileName, line: number, key: key, message: message)
    }

    /// Exactly one word.
    func single() throws(ConfigError) -> String {
        guard arguments.count == 1 else {
            throw fail(arguments.isEmpty ? "missing value" : "expects one value, got \(arguments.count)")
        }
        return arguments[0]
    }

    /// The rest of the line, which may hold spaces.
    func text() throws(ConfigError) -> String {
        guard !rest.isEmpty else { throw fail("missing value") }
        return rest
    }

    func boolean() throws(ConfigError) -> Bool {
        switch try single() {
        case "true": return true
        case "false": return false
        case let value: throw fail("'\(value)' is not true or false")
        }
    }

    func integer(_ range: ClosedRange<Int>) throws(ConfigError) -> Int {
        let value = try single()
        guard let number = Int(value), range.contains(number) else {
            throw fail("'\(value)' is not a whole number in \(range.lowerBound)...\(range.upperBound)")
        }
        return number
    }
}
