// `midge import-mosquitto`: carries a mosquitto 2.0 installation's retained messages and persistent sessions
// (mosquitto.db) into Midge's store, so clients find them after switching brokers.
import Glibc
import MidgeRecords
import MidgeServer
import MidgeStore

enum ImportCommand {
    static let usage = """
        Usage: midge import-mosquitto [-c config_file] DIR_OR_FILE

        Reads DIR_OR_FILE (a mosquitto.db, or the directory holding one: mosquitto's persistence_location) and
        adds its retained messages and persistent sessions (subscriptions, queued QoS 1/2 messages) to the store
        in persistence_location of config_file (default: the current directory). Stop midge first: the store
        is used by one process at a time.
        """

    /// Returns the exit status.
    static func run(arguments: [String]) -> Int32 {
        var configFile: String?
        var source: String?
        var position = 0
        while position < arguments.count {
            let argument = arguments[position]
            position += 1
            if argument == "-c" || argument == "--config-file", position < arguments.count {
                configFile = arguments[position]
                position += 1
            } else if argument == "-h" || argument == "--help" {
                print(usage)
                return 0
            } else if source == nil && !argument.hasPrefix("-") {
                source = argument
            } else {
                return complain("unexpected argument '\(argument)'.\n\n\(usage)")
            }
        }
        guard var path = source else { return complain("no mosquitto.db given.\n\n\(usage)") }

        var directory = "."
        if let configFile {
            let configuration: Configuration
            do {
                configuration = try loadConfiguration(configFile)
            } catch {
                return complain("\(error)")
            }
            guard configuration.persistence else {
                return complain(
                    "\(configFile) has persistence off: midge would not read the imported store. "
                        + "Set `persistence true` first.")
            }
            if !configuration.persistenceLocation.isEmpty { directory = configuration.persistenceLocation }
        }

        var status = stat()
        if stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR {
            path += path.hasSuffix("/") ? "mosquitto.db" : "/mosquitto.db"
        }
        guard let bytes = readFileBytes(path) else {
            return complain("unable to read \(path): \(String(cString: strerror(errno))).")
        }
        let database: MosquittoDatabase
        do {
            database = try MosquittoDatabase(bytes: bytes)
        } catch {
            return complain("\(path): \(error)")
        }

        let opened: (DurableStore, StoreState, RecoveryReport)
        do {
            opened = try DurableStore.open(directory: directory)
        } catch {
            return complain("unable to open the store in \(directory): \(error). Is midge running?")
        }
        let (store, state, _) = opened
        let (records, skipped) = database.records(
            firstMessageID: state.nextMessageID, unixSeconds: Int64(time(nil)))
        store.append(records)
        store.close()
        guard store.isHealthy else { return complain("the store in \(directory) could not be written.") }

        for line in skipped { print("skipped: \(line)") }
        let subscriptions = database.clients.values.reduce(0) { $0 + $1.subscriptions.count }
        let messages = database.clients.values.reduce(0) { $0 + $1.messages.filter { $0.qos > 0 }.count }
        print(
            "Imported \(database.retained.count) retained messages and \(database.clients.count) persistent sessions "
                + "(\(subscriptions) subscriptions, \(messages) queued messages) from \(path) into \(directory).")
        return 0
    }

    private static func complain(_ message: String) -> Int32 {
        var line = "Error: " + message + "\n"
        line.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
        return 1
    }
}
