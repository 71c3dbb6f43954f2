// The one error a password or ACL file can raise: which file, which line, what is wrong with it.

/// A password file, ACL file or `midge passwd` input that cannot be used as it is.
///
/// The broker refuses to start on one of these rather than running with a file it only half understood:
/// a skipped line could be the one that denies something.
public struct AuthFileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The path (or the `source` name given with the text).
    public let file: String
    /// The 1-based line, or nil when the problem is the file as a whole (missing, unreadable).
    public let line: Int?
    public let message: String

    public init(file: String, line: Int?, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String {
        if let line { return "\(file):\(line): \(message)" }
        return "\(file): \(message)"
    }
}
