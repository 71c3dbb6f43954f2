// Asking for a password on the terminal with echo off (termios), for `midge passwd`.
import Glibc

/// The terminal settings to restore if Ctrl-C arrives while echo is off. A signal handler cannot
/// capture context, so this is process-global; only `midge passwd`, single-threaded, touches it.
nonisolated(unsafe) private var savedTerminal = termios()
nonisolated(unsafe) private var echoIsOff = false

struct TerminalConsole: PasswordConsole {
    func readPassword(prompt: String) -> String? {
        writeAll(STDOUT_FILENO, prompt)
        let interactive = isatty(STDIN_FILENO) == 1
        if interactive { echoOff() }
        defer {
            if interactive {
                echoOn()
                // The user's Enter was not echoed either.
                writeAll(STDOUT_FILENO, "\n")
            }
        }
        var line: [UInt8] = []
        var byte: UInt8 = 0
        // One byte at a time, so nothing after the line is consumed; bounded by mosquitto's limit.
        while line.count <= 65536 {
            let count = Glibc.read(STDIN_FILENO, &byte, 1)
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { return line.isEmpty ? nil : decode(line) }
            if byte == UInt8(ascii: "\n") { break }
            line.append(byte)
        }
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        return decode(line)
    }

    func error(_ message: String) {
        writeAll(STDERR_FILENO, message + "\n")
    }

    private func decode(_ bytes: [UInt8]) -> String? {
        String(validating: bytes, as: UTF8.self)
    }

    private func echoOff() {
        guard tcgetattr(STDIN_FILENO, &savedTerminal) == 0 else { return }
        var quiet = savedTerminal
        quiet.c_lflag &= ~tcflag_t(ECHO)
        echoIsOff = true
        signal(SIGINT) { _ in
            if echoIsOff { tcsetattr(STDIN_FILENO, TCSANOW, &savedTerminal) }
            _exit(130)
        }
        tcsetattr(STDIN_FILENO, TCSANOW, &quiet)
    }

    private func echoOn() {
        guard echoIsOff else { return }
        tcsetattr(STDIN_FILENO, TCSANOW, &savedTerminal)
        echoIsOff = false
        signal(SIGINT, SIG_DFL)
    }

    private func writeAll(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return }
            bytes = bytes.dropFirst(written)
        }
    }
}
