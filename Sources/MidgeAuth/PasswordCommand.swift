// `midge passwd`: mosquitto_passwd's command line for making and editing password files.
import Glibc

/// `midge passwd [-c] [-b] [-I ITERATIONS] FILE USER [PASSWORD]` and `midge passwd -D FILE USER`.
///
/// Like `mosquitto_passwd` 2.0: `-c` creates (or overwrites) the file with one user, otherwise the user's
/// line is replaced or appended and every other line (comments included) is kept as it was; `-b` takes
/// the password from the command line, otherwise it is read twice from the terminal with echo off;
/// `-D` deletes the user. Entries are `$7$` (PBKDF2-HMAC-SHA512, 101 iterations, 12-byte random salt),
/// which mosquitto 2.0 reads unchanged. The file is replaced atomically (temporary file, fsync, rename),
/// keeping an existing file's mode and owner; a new file gets 0666 less the umask, as mosquitto_passwd's.
public enum PasswordCommand {
    /// `arguments` are the words after `passwd` (no program name). Returns the process exit status.
    public static func run(arguments: [String]) -> Int32 {
        run(arguments: arguments, console: TerminalConsole())
    }

    static let usage = """
        Usage: midge passwd [-c] [-I ITERATIONS] FILE USER
               midge passwd [-c] [-I ITERATIONS] -b FILE USER PASSWORD
               midge passwd -D FILE USER
         -b : take the password from the command line instead of asking for it twice.
         -c : create a new password file, overwriting an existing one.
         -D : delete the user instead of adding it or changing its password.
         -I : PBKDF2 iterations (default \(PasswordHash.defaultIterations), as mosquitto_passwd 2.0).
        """

    struct Options: Equatable {
        var create = false
        var batch = false
        var delete = false
        var iterations = PasswordHash.defaultIterations
        var file = ""
        var username = ""
        var password: String? = nil
    }

    enum Failure: Error, Equatable {
        case usage(String)
        case message(String)
    }

    static func run(arguments: [String], console: any PasswordConsole) -> Int32 {
        do throws(Failure) {
            var options = try parse(arguments)
            try validate(username: options.username)
            if options.delete {
                try deleteUser(options.username, in: options.file)
                return 0
            }
            if options.password == nil { options.password = try ask(console) }
            let password = Array((options.password ?? "").utf8)
            guard password.count <= 65535 else {
                throw .message("Error: Password must be less than 65536 characters long.")
            }
            try store(options.username, PasswordHash.make(password: password, iterations: options.iterations), options)
            return 0
        } catch {
            switch error {
            case .usage(let message): console.error(message + "\n" + usage)
            case .message(let message): console.error(message)
            }
            return 1
        }
    }

    static func parse(_ arguments: [String]) throws(Failure) -> Options {
        var options = Options()
        var index = 0
        while index < arguments.count, arguments[index].hasPrefix("-"), arguments[index].count > 1 {
            switch arguments[index] {
            case "-b": options.batch = true
            case "-c": options.create = true
            case "-D": options.delete = true
            case "-I":
                guard index + 1 < arguments.count, let count = Int(arguments[index + 1]),
                    count >= 1, count <= Int(Int32.max)
                else { throw .usage("Error: -I needs a number of iterations from 1 to 2147483647.") }
                options.iterations = count
                index += 1
            case "-h", "--help": throw .usage("midge passwd manages mosquitto-format password files.")
            default: throw .usage("Error: unknown option \(arguments[index]).")
            }
            index += 1
        }
        if options.create && options.delete { throw .usage("Error: -c and -D cannot be used together.") }
        if options.batch && options.delete { throw .usage("Error: -b and -D cannot be used together.") }
        let positional = Array(arguments[index...])
        let expected = options.batch ? 3 : 2
        guard positional.count == expected else {
            throw .usage("Error: expected \(options.batch ? "FILE USER PASSWORD" : "FILE USER").")
        }
        options.file = positional[0]
        options.username = positional[1]
        if options.batch { options.password = positional[2] }
        return options
    }

    /// Refuses names that would not read back as written: a `:` ends the name, blanks around it are
    /// trimmed, a leading `#` makes the line a comment, control characters break the line format.
    static func validate(username: String) throws(Failure) {
        let bytes = Array(username.utf8)
        guard !bytes.isEmpty else { throw .message("Error: Username must not be empty.") }
        guard bytes.count <= 65535 else { throw .message("Error: Username must be less than 65536 characters long.") }
        guard !bytes.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
            throw .message("Error: Username must not contain control characters.")
        }
        guard !bytes.contains(UInt8(ascii: ":")) else {
            throw .message("Error: Username must not contain the ':' character.")
        }
        guard let first = bytes.first, let last = bytes.last, !TextLines.isBlank(first), !TextLines.isBlank(last)
        else { throw .message("Error: Username must not start or end with a space.") }
        guard first != UInt8(ascii: "#") else { throw .message("Error: Username must not start with '#'.") }
    }

    private static func ask(_ console: any PasswordConsole) throws(Failure) -> String {
        guard let first = console.readPassword(prompt: "Password: "),
            let second = console.readPassword(prompt: "Reenter password: ")
        else { throw .message("Error: Unable to read the password.") }
        guard first == second else { throw .message("Error: Passwords do not match.") }
        guard !first.isEmpty else { throw .message("Error: Empty password.") }
        return first
    }

    private static func store(_ username: String, _ hash: PasswordHash, _ options: Options) throws(Failure) {
        let entry = Array("\(username):\(hash.encoded)".utf8)
        if options.create {
            try write([entry], to: options.file)
            return
        }
        var lines = try existingLines(options.file)
        if let index = lines.firstIndex(where: { isEntry($0, of: username) }) {
            lines[index] = entry
        } else {
            lines.append(entry)
        }
        try write(lines, to: options.file)
    }

    private static func deleteUser(_ username: String, in file: String) throws(Failure) {
        let lines = try existingLines(file)
        var kept: [[UInt8]] = []
        for line in lines where !isEntry(line, of: username) { kept.append(line) }
        guard kept.count < lines.count else {
            throw .message("Warning: User \(username) not found in password file.")
        }
        try write(kept, to: file)
    }

    /// The file's lines, after checking that all of them parse: editing a file the broker would refuse
    /// would only move the error to the next restart.
    private static func existingLines(_ file: String) throws(Failure) -> [[UInt8]] {
        let bytes: [UInt8]
        let lines: [TextLine]
        do throws(AuthFileError) {
            bytes = try TextLines.read(path: file)
            lines = TextLines.split(bytes)
            _ = try PasswordFile(bytes: bytes, source: file)
        } catch {
            throw .message("Error: \(error)")
        }
        return lines.map { Array($0.bytes) }
    }

    /// Lines were all checked by `existingLines`, so a parse error here cannot happen; it reads as "no".
    private static func isEntry(_ line: [UInt8], of username: String) -> Bool {
        let parsed: PasswordFile.Entry?
        do throws(AuthFileError) {
            parsed = try PasswordFile.parse(TextLine(number: 0, bytes: line[...]), source: "")
        } catch {
            return false
        }
        return parsed?.username.elementsEqual(username.utf8) ?? false
    }

    private static func write(_ lines: [[UInt8]], to file: String) throws(Failure) {
        var bytes: [UInt8] = []
        for line in lines {
            bytes.append(contentsOf: line)
            bytes.append(UInt8(ascii: "\n"))
        }
        do throws(AuthFileError) {
            try AtomicFile.replace(path: file, with: bytes)
        } catch {
            throw .message("Error: \(error)")
        }
    }
}

/// Where `midge passwd` asks for a password and reports errors; a test substitutes its own.
protocol PasswordConsole {
    /// One line, without its line ending; nil at end of input.
    func readPassword(prompt: String) -> String?
    func error(_ message: String)
}
