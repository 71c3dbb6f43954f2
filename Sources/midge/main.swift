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

    Usage: midge [-c config_file] [-d] [-p port]... [-v]
           midge passwd [options] password_file username
           midge import-mosquitto [-c config_file] DIR_OR_FILE
           midge -h

     -c : read the configuration from a file. Without one, midge listens on the loopback
          interfaces only (127.0.0.1 and ::1), port 1883, and allows anonymous clients.
     -d : run in the background; the command returns once the broker serves (status 0) or
          has failed (status 1).
     -h : display this help.
     -p : listen on this port instead of 1883, loopback only; may be repeated. Ignored when
          the configuration file declares listeners, as in mosquitto.
     -v : verbose mode: enable every log type, overriding log_type in the configuration file.
     passwd : manage a password file (run `midge passwd` for its options).
     import-mosquitto : carry a mosquitto.db's retained messages and persistent sessions
          into this broker's store (run `midge import-mosquitto -h`).

    Signals: SIGHUP reopens log files and re-reads the configuration, password, ACL and TLS
    files; SIGUSR1 reports the store's durability; SIGUSR2 logs the subscription tree;
    SIGINT and SIGTERM stop.
    """

/// Reads a whole file; nil when it cannot be opened or read.
func readFileBytes(_ path: String) -> [UInt8]? { WholeFile.read(path) }

/// Reads a whole file as UTF-8 text.
func readTextFile(_ path: String) -> String? {
    readFileBytes(path).map { String(decoding: $0, as: UTF8.self) }
}

// MARK: Command line

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "passwd" {
    exit(PasswordCommand.run(arguments: Array(CommandLine.arguments.dropFirst(2))))
}
if arguments.first == "import-mosquitto" {
    exit(ImportCommand.run(arguments: Array(arguments.dropFirst())))
}

var configFile: String?
var commandLinePorts: [UInt16] = []
var verbose = false
var daemon = false
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
        commandLinePorts.append(port)
        position += 1
    case "-d", "--daemon":
        daemon = true
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

/// Reads and parses the configuration file, with its `include_dir` files.
func loadConfiguration(_ path: String) throws(ConfigError) -> Configuration {
    guard let text = readTextFile(path) else {
        throw ConfigError(
            fileName: path, line: 0, key: "-c",
            message: "unable to open the file: \(String(cString: strerror(errno))); check the path and permissions")
    }
    return try Configuration.parse(text: text, fileName: path, files: FileSystemConfigSource())
}

var configuration = Configuration()
if let configFile {
    do {
        configuration = try loadConfiguration(configFile)
    } catch {
        fail("Error: \(error)")
    }
}
if verbose { configuration.logTypes = .all }

// Before the logger and any thread: fork is only safe in a single-threaded process.
if daemon { Daemon.detach() }

let logger: Logger
do {
    var format = LogFormat()
    format.timestampFormat = configuration.logTimestampFormat
    format.connectionMessages = configuration.connectionMessages
    format.syslogFacility = configuration.logFacility
    logger = try Logger(
        types: configuration.logTypes, timestamps: configuration.logTimestamp,
        destinations: configuration.logDestinations, format: format)
} catch {
    fail("Error: \(error)")
}

logger.log(.notice, "midge version \(midgeVersion) starting")
if let configFile { logger.log(.notice, "Config loaded from \(configFile).") }
for warning in configuration.warnings { logger.log(.warning, "Warning: \(warning)") }
if geteuid() == 0 && configuration.user == nil {
    logger.log(
        .warning, "Warning: running as root; set `user` in the configuration to drop privileges once started.")
}
if configuration.listeners.isEmpty {
    logger.log(
        .notice,
        "Starting in local only mode. Connections will only be possible from clients running on this machine.")
    logger.log(.notice, "Create a configuration file which defines a listener to allow remote access.")
} else if !commandLinePorts.isEmpty {
    logger.log(.warning, "Warning: -p is ignored because the configuration file declares listeners.")
}

// A broken password or ACL file is a fatal configuration error, as in mosquitto. Wrapped so SIGHUP can swap in a
// re-read file while clients stay connected. With per_listener_settings each listener has its own set.
let brokerSecurity: SecurityFiles
var listenerSecurity: [(listener: ListenerConfiguration, files: SecurityFiles)] = []
do {
    brokerSecurity = try SecurityFiles(
        scope: "", passwordFile: configuration.passwordFile, aclFile: configuration.aclFile,
        tokenKey: configuration.tokenKey, tokenIssuer: configuration.tokenIssuer,
        tokenAudience: configuration.tokenAudience)
    for listener in configuration.listeners.sorted(by: { $0.securityProfile < $1.securityProfile })
    where listener.securityProfile > 0 {
        let own = listener.security ?? ListenerSecuritySettings()
        let files = try SecurityFiles(
            scope: "the listener on port \(listener.port)", passwordFile: own.passwordFile, aclFile: own.aclFile,
            tokenKey: own.tokenKey, tokenIssuer: own.tokenIssuer, tokenAudience: own.tokenAudience)
        listenerSecurity.append((listener, files))
    }
} catch {
    fail("Error: \(error.message)")
}

// mosquitto's dynamic security plugin, built in: its file replaces the password and ACL files, which Midge does not
// consult beside it (mosquitto would ask both, in an order that depends on how it was built).
var dynamicSecurity: DynamicSecurity?
if let path = configuration.dynamicSecurityFile {
    if configuration.passwordFile != nil || configuration.aclFile != nil || configuration.tokenKey != nil
        || configuration.perListenerSettings
    {
        fail(
            "Error: the dynamic security plugin cannot be combined with password_file, acl_file, jwt_* keys or "
                + "per_listener_settings in Midge; manage its clients and roles with mosquitto_ctrl instead.")
    }
    do {
        dynamicSecurity = try DynamicSecurity(path: path, log: { level, line in logger.log(level, line) })
        logger.log(.notice, "Dynamic security: loaded \(path).")
    } catch {
        fail("Error: cannot load the dynamic security file: \(error)")
    }
}

raiseOpenFileLimit(logger: logger)

// MARK: Running

// SIGINT, SIGTERM and SIGHUP are blocked before any loop thread exists (threads inherit the mask), so they
// are delivered only to this thread, which waits for them with sigwait: no async-signal-safety concerns.
var handledSignals = sigset_t()
sigemptyset(&handledSignals)
for signal in [SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2] { sigaddset(&handledSignals, signal) }
pthread_sigmask(SIG_BLOCK, &handledSignals, nil)

var settings = ServerSettings(
    configuration: configuration, commandLinePorts: commandLinePorts, authenticator: brokerSecurity.authenticator,
    accessControl: brokerSecurity.accessControl)
if let dynamicSecurity {
    settings.authenticator = dynamicSecurity
    settings.accessControl = dynamicSecurity
    settings.controlHandler = dynamicSecurity
}
settings.listenerAuth = listenerSecurity.map { listener, files in
    let own = listener.security ?? ListenerSecuritySettings()
    let broker = configuration.broker
    return ListenerAuth(
        authenticator: files.authenticator,
        security: ListenerSecurity(
            allowAnonymous: own.allowAnonymous ?? false,
            allowZeroLengthClientID: own.allowZeroLengthClientID ?? broker.allowZeroLengthClientID,
            autoIDPrefix: own.autoIDPrefix ?? broker.autoIDPrefix, accessControl: files.accessControl))
}
let server: Server
do {
    server = try Server.start(settings: settings, logger: logger)
} catch {
    logger.log(.error, "Error: \(error)")
    exit(1)
}

/// Stops what `Server.start` started and exits 1: nothing stays half-started.
@MainActor func abandon(_ message: String) -> Never {
    logger.log(.error, "Error: \(message)")
    server.stop()
    server.wait()
    PIDFile.remove(configuration.pidFile)
    exit(1)
}

// The pid file is written while still root (its directory is often root's), then root is given up, as mosquitto.
if let path = configuration.pidFile, let problem = PIDFile.write(path) { abandon(problem) }
if let user = configuration.user {
    if let problem = dropPrivileges(to: user) { abandon(problem) }
    if getuid() != 0 { logger.log(.notice, "Running as user \(user).") }
}
logger.log(.notice, "midge version \(midgeVersion) running")
ServiceNotifier.notify("READY=1\nSTATUS=serving\nMAINPID=\(getpid())")
Daemon.ready()

/// SIGUSR1: mosquitto saves its in-memory database; Midge's store is a write-ahead log that already holds every
/// acknowledged message, so the signal reports how durable that is rather than writing anything.
@MainActor func reportDurability() {
    guard configuration.persistence else {
        logger.log(.notice, "Received SIGUSR1: persistence is off, there is no store to save.")
        return
    }
    let how: String
    switch configuration.persistenceFsync {
    case .always: how = "and fsynced before it was acknowledged (persistence_fsync always)"
    case .periodic(let milliseconds): how = "and is fsynced within \(milliseconds) ms (persistence_fsync periodic)"
    case .none: how = "and reaches the disk when the system flushes it (persistence_fsync none)"
    }
    logger.log(
        .notice,
        "Received SIGUSR1: every acknowledged message is already in the write-ahead log, \(how); "
            + "nothing to save.")
}

/// SIGUSR2: mosquitto prints its subscription tree to stdout; Midge logs it, one line per filter with its
/// subscribers, bounded so a large tree cannot flood the log (the last line says what was left out).
@MainActor func reportSubscriptions() {
    guard let tree = server.subscriptionTree(maxLines: 1000, maxSubscribersPerLine: 50) else {
        logger.log(.notice, "Received SIGUSR2: the broker core is not running yet.")
        return
    }
    logger.log(.notice, "Received SIGUSR2: subscription tree, \(tree.filters) filter\(tree.filters == 1 ? "" : "s"):")
    for line in tree.lines { logger.log(.notice, "  \(line)") }
    if tree.omittedFilters > 0 {
        logger.log(.notice, "  ... \(tree.omittedFilters) more filters not shown (at most \(tree.lines.count) are).")
    }
}

/// SIGHUP: the configuration file is read again; a broken one keeps the running configuration. The password and
/// ACL files are re-read from the paths it now names.
@MainActor func rereadConfiguration() {
    guard let configFile else { return }
    do {
        let reread = try loadConfiguration(configFile)
        brokerSecurity.follow(passwordFile: reread.passwordFile, aclFile: reread.aclFile)
        for (listener, files) in listenerSecurity {
            // The same listener in the re-read file: its security profile number is its place in the file.
            let again = reread.listeners.first { $0.securityProfile == listener.securityProfile }?.security
            files.follow(passwordFile: again?.passwordFile, aclFile: again?.aclFile)
        }
        var format = LogFormat()
        format.timestampFormat = reread.logTimestampFormat
        format.connectionMessages = reread.connectionMessages
        logger.reconfigure(
            types: verbose ? .all : reread.logTypes, timestamps: reread.logTimestamp, format: format)
        logger.log(
            .notice,
            "Reloaded the configuration from \(configFile): log_type, log_timestamp, "
                + "log_timestamp_format and connection_messages apply now; listener, persistence and log_dest changes "
                + "at the next start.")
    } catch {
        logger.log(.error, "Unable to reload the configuration, keeping the running one: \(error)")
    }
}

while true {
    var received: Int32 = 0
    guard sigwait(&handledSignals, &received) == 0 else { continue }
    if received == SIGUSR1 {
        reportDurability()
        continue
    }
    if received == SIGUSR2 {
        reportSubscriptions()
        continue
    }
    if received == SIGHUP {
        ServiceNotifier.notify("RELOADING=1")
        // First, so that after a rotation every line about this reload lands in the new file.
        let reopenProblems = logger.reopenFiles()
        // As mosquitto: re-read the password file, the ACL file and the certificates; connections stay. A broken
        // file keeps the previous one, and the log says why.
        logger.log(.notice, "Received SIGHUP, reloading the password file, ACL file, TLS certificates and PSK files.")
        for problem in reopenProblems { logger.log(.error, "Error: \(problem)") }
        rereadConfiguration()
        brokerSecurity.reload(logger: logger)
        for (_, files) in listenerSecurity { files.reload(logger: logger) }
        server.hangup()
        ServiceNotifier.notify("READY=1")
        continue
    }
    logger.log(.notice, "Received signal \(received == SIGINT ? "SIGINT" : "SIGTERM"), shutting down.")
    break
}
ServiceNotifier.notify("STOPPING=1")
server.stop()
server.wait()
dynamicSecurity?.flush()
PIDFile.remove(configuration.pidFile)
logger.log(.notice, "midge version \(midgeVersion) terminating")
exit(0)
