// The `midge` executable: command line, configuration file, logging, authentication files, signals, exit status.
import Glibc
import MidgeAuth
import MidgeCore
import MidgeServer

/// Prints to stderr and exits with status 1: for problems found before the logger exists.
func fail(_ message: String) -> Never {
    var line = message + "\n"
    line.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
    exit(1)
}

let usage = """
    midge version \(midgeVersion)

    midge is an MQTT 3.1.1 broker.

    Usage: midge [-c config_file] [-p port] [-v]
           midge passwd [options] password_file username
           midge -h

     -c : read the configuration from a file. Without one, midge listens on the loopback
          interfaces only (127.0.0.1 and ::1), port 1883, and allows anonymous clients.
     -h : display this help.
     -p : listen on this port instead of 1883, loopback only. Ignored when the configuration
          file declares listeners, as in mosquitto.
     -v : verbose mode: enable every log type, overriding log_type in the configuration file.
     passwd : manage a password file (run `midge passwd` for its options).
    """

/// Reads a whole file as UTF-8 text.
func readTextFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count > 0 {
            bytes.append(contentsOf: chunk[0..<count])
        } else if count == 0 {
            return String(decoding: bytes, as: UTF8.self)
        } else if errno != EINTR {
            return nil
        }
    }
}

// MARK: Command line

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "passwd" {
    exit(PasswordCommand.run(arguments: Array(CommandLine.arguments.dropFirst(2))))
}

var configFile: String?
var commandLinePort: UInt16?
var verbose = false
var position = 0
while position < arguments.count {
    let argument = arguments[position]
    position += 1
    switch argument {
    case "-c", "--config-file":
        guard position < arguments.count else { fail("Error: -c argument given, but no config file specified.") }
        configFile = arguments[position]
        position += 1
    case "-p", "--port":
        guard position < arguments.count, let port = UInt16(arguments[position]) else {
            fail("Error: -p needs a port number between 0 and 65535.")
        }
        commandLinePort = port
        position += 1
    case "-v", "--verbose":
        verbose = true
    case "-h", "--help":
        print(usage)
        exit(0)
    default:
        fail("Error: unknown option '\(argument)'.\n\n\(usage)")
    }
}

// MARK: Configuration

var configuration = Configuration()
if let configFile {
    guard let text = readTextFile(configFile) else {
        fail("Error: unable to open config file \(configFile): \(String(cString: strerror(errno))).")
    }
    do {
        configuration = try Configuration.parse(text: text, fileName: configFile)
    } catch {
        fail("Error: \(error)")
    }
}
if verbose { configuration.logTypes = .all }

let logger: Logger
do {
    logger = try Logger(
        types: configuration.logTypes, timestamps: configuration.logTimestamp,
        destinations: configuration.logDestinations)
} catch {
    fail("Error: \(error)")
}

logger.log(.notice, "midge version \(midgeVersion) starting")
if let configFile { logger.log(.notice, "Config loaded from \(configFile).") }
if configuration.listeners.isEmpty {
    logger.log(
        .notice,
        "Starting in local only mode. Connections will only be possible from clients running on this machine.")
    logger.log(.notice, "Create a configuration file which defines a listener to allow remote access.")
} else if commandLinePort != nil {
    logger.log(.warning, "Warning: -p is ignored because the configuration file declares listeners.")
}

// A broken password or ACL file is a fatal configuration error, as in mosquitto.
// Wrapped so SIGHUP can swap in a re-read file while clients stay connected.
var authenticator: any Authenticator = AllowAll()
var accessControl: any AccessControl = AllowAll()
var reloadablePasswords: ReloadableAuthenticator?
var reloadableRules: ReloadableAccessControl?
do {
    if let path = configuration.passwordFile {
        let reloadable = ReloadableAuthenticator(try PasswordFile(path: path))
        reloadablePasswords = reloadable
        authenticator = reloadable
    }
    if let path = configuration.aclFile {
        let reloadable = ReloadableAccessControl(try ACLFile(path: path))
        reloadableRules = reloadable
        accessControl = reloadable
    }
} catch {
    logger.log(.error, "Error: \(error)")
    exit(1)
}

// Token clients and password clients side by side: a JWT in the password goes to the token verifier.
if let tokenKey = configuration.tokenKey {
    let algorithm: TokenAuthenticator.Algorithm
    switch tokenKey {
    case .hs256SecretFile(let path):
        guard var secret = readTextFile(path) else { fail("Error: cannot read the JWT secret file \(path).") }
        while secret.last == "\n" || secret.last == "\r" { secret.removeLast() }
        algorithm = .hs256(secret: Array(secret.utf8))
    case .rs256PublicKey(let path):
        guard let pem = readTextFile(path) else { fail("Error: cannot read the JWT public key file \(path).") }
        algorithm = .rs256(publicKeyPEM: pem)
    }
    var options = TokenAuthenticator.Options()
    options.issuer = configuration.tokenIssuer
    options.audience = configuration.tokenAudience
    do {
        let tokens = try TokenAuthenticator(algorithm, options: options)
        let chain = TokenOrPasswordAuthenticator(
            tokens: tokens, passwords: reloadablePasswords, rules: accessControl)
        authenticator = chain
        accessControl = chain
    } catch {
        fail("Error: the JWT key is not usable: \(error)")
    }
}

raiseOpenFileLimit(logger: logger)

// MARK: Running

// SIGINT, SIGTERM and SIGHUP are blocked before any loop thread exists (threads inherit the mask), so they
// are delivered only to this thread, which waits for them with sigwait: no async-signal-safety concerns.
var handledSignals = sigset_t()
sigemptyset(&handledSignals)
for signal in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&handledSignals, signal) }
pthread_sigmask(SIG_BLOCK, &handledSignals, nil)

let settings = ServerSettings(
    configuration: configuration, commandLinePort: commandLinePort, authenticator: authenticator,
    accessControl: accessControl)
let server: Server
do {
    server = try Server.start(settings: settings, logger: logger)
} catch {
    logger.log(.error, "Error: \(error)")
    exit(1)
}
logger.log(.notice, "midge version \(midgeVersion) running")

while true {
    var received: Int32 = 0
    guard sigwait(&handledSignals, &received) == 0 else { continue }
    if received == SIGHUP {
        // As mosquitto: re-read the password file, the ACL file and the certificates; connections stay. A broken
        // file keeps the previous one, and the log says why.
        logger.log(.notice, "Received SIGHUP, reloading the password file, ACL file, TLS certificates and PSK files.")
        if let path = configuration.passwordFile, let reloadablePasswords {
            do {
                reloadablePasswords.replace(with: try PasswordFile(path: path))
                logger.log(.notice, "Reloaded the password file \(path).")
            } catch {
                logger.log(.error, "Unable to reload the password file, keeping the previous one: \(error)")
            }
        }
        if let path = configuration.aclFile, let reloadableRules {
            do {
                reloadableRules.replace(with: try ACLFile(path: path))
                logger.log(.notice, "Reloaded the ACL file \(path).")
            } catch {
                logger.log(.error, "Unable to reload the ACL file, keeping the previous one: \(error)")
            }
        }
        server.hangup()
        continue
    }
    logger.log(.notice, "Received signal \(received == SIGINT ? "SIGINT" : "SIGTERM"), shutting down.")
    break
}
server.stop()
server.wait()
logger.log(.notice, "midge version \(midgeVersion) terminating")
exit(0)
