// The fuzz targets' command line: libFuzzer's driver in a -sanitize=fuzzer build, corpus replay in every build.
//
//   midge-fuzz replay PATH...                  every file under PATH through both entry points (any build)
//   midge-fuzz decoder|core [--trace] FILE...  one entry point on the given files (plain build)
//   midge-fuzz decoder|core [libFuzzer flags] [CORPUS...]   fuzz (build with -DMIDGE_LIBFUZZER)
//
// In the libFuzzer build the entry point can also come from MIDGE_FUZZ_TARGET, which is how libFuzzer's own
// child processes (-fork, -merge) get it: the name is exported before the driver starts.
import Glibc

enum FuzzTarget: String, CaseIterable {
    case decoder
    case core

    func run(_ bytes: UnsafeRawBufferPointer, trace: Bool = false) -> [String] {
        switch self {
        case .decoder: DecoderTarget.run(bytes)
        case .core: CoreTarget.run(bytes, trace: trace)
        }
    }
}

/// To standard error through write(2): Swift 6 rejects the C global `stderr` as shared mutable state.
func printError(_ text: String) {
    var line = text + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

// MARK: Reading inputs

func readFile(_ path: String) -> [UInt8]? {
    guard let file = fopen(path, "rb") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
        if count == 0 { break }
        bytes.append(contentsOf: chunk[0..<count])
    }
    return ferror(file) == 0 ? bytes : nil
}

func isDirectory(_ path: String) -> Bool {
    var status = stat()
    return stat(path, &status) == 0 && status.st_mode & S_IFMT == S_IFDIR
}

/// The regular files under `path` (itself when it is one), depth first, sorted by name for a stable order.
func inputFiles(under path: String) -> [String] {
    guard isDirectory(path) else { return [path] }
    guard let directory = opendir(path) else { return [] }
    defer { closedir(directory) }
    var names: [String] = []
    while let entry = readdir(directory) {
        let name = withUnsafePointer(to: entry.pointee.d_name) {
            String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
        }
        if name != "." && name != ".." && !name.hasPrefix(".") { names.append(name) }
    }
    return names.sorted().flatMap { inputFiles(under: path + "/" + $0) }
}

// MARK: Naming the input that crashed

/// The file being replayed, for the crash handler; a C string so the handler need not touch Swift objects.
nonisolated(unsafe) var currentInputName: UnsafeMutablePointer<CChar>?

/// A trap ends the process before the replay can report; this names the input first, then lets the signal
/// do what it would have done (core dump, non-zero exit).
func installCrashNamer() {
    for signalNumber in [SIGILL, SIGTRAP, SIGABRT, SIGSEGV, SIGBUS, SIGFPE] {
        signal(signalNumber) { signalNumber in
            let prefix = "midge-fuzz: crashed while replaying "
            _ = write(2, prefix, strlen(prefix))
            if let name = currentInputName { _ = write(2, name, strlen(name)) }
            _ = write(2, "\n", 1)
            signal(signalNumber, SIG_DFL)
            raise(signalNumber)
        }
    }
}

// MARK: Commands

func replay(_ paths: [String]) -> Int32 {
    installCrashNamer()
    var files = 0
    var failed = 0
    let blind = CheckerSelfTest.failures()
    for failure in blind { printError("FAIL checker self-test: \(failure)") }
    failed += blind.count
    for path in paths {
        let found = inputFiles(under: path)
        if found.isEmpty { printError("midge-fuzz: nothing to replay under \(path)") }
        for file in found {
            guard let bytes = readFile(file) else {
                printError("midge-fuzz: cannot read \(file)")
                failed += 1
                continue
            }
            free(currentInputName)
            currentInputName = strdup(file)
            files += 1
            for target in FuzzTarget.allCases {
                let findings = bytes.withUnsafeBytes { target.run($0) }
                if findings.isEmpty { continue }
                failed += 1
                printError("FAIL \(target.rawValue) \(file) (\(bytes.count) bytes: \(hex(bytes)))")
                for finding in findings.prefix(10) { printError("    \(finding)") }
            }
        }
    }
    print(
        "midge-fuzz replay: \(CheckerSelfTest.cases.count) checker self-tests, \(files) files through "
            + "\(FuzzTarget.allCases.count) entry points, \(failed) failures")
    return files > 0 && failed == 0 ? 0 : 1
}

/// One entry point over the given files, optionally printing the core's events and actions.
func runFiles(_ target: FuzzTarget, _ arguments: [String]) -> Int32 {
    let trace = arguments.contains("--trace")
    let paths = arguments.filter { $0 != "--trace" }
    guard !paths.isEmpty else {
        printError("usage: midge-fuzz \(target.rawValue) [--trace] FILE...")
        return 2
    }
    var failed = 0
    for path in paths.flatMap(inputFiles(under:)) {
        guard let bytes = readFile(path) else {
            printError("midge-fuzz: cannot read \(path)")
            return 2
        }
        let findings = bytes.withUnsafeBytes { target.run($0, trace: trace) }
        print("\(findings.isEmpty ? "ok" : "FAIL") \(target.rawValue) \(path)")
        for finding in findings { print("    \(finding)") }
        if !findings.isEmpty { failed += 1 }
    }
    return failed == 0 ? 0 : 1
}

func usage() -> Int32 {
    printError(
        """
        usage: midge-fuzz replay PATH...
               midge-fuzz decoder|core [--trace] FILE...
        A build with -Xswiftc -sanitize=fuzzer -Xswiftc -DMIDGE_LIBFUZZER -Xswiftc -use-ld=lld fuzzes instead
        (Tests/fuzz/run.sh builds and runs it):
               midge-fuzz decoder|core [libFuzzer flags] [CORPUS...]  (or MIDGE_FUZZ_TARGET=decoder|core)
        """)
    return 2
}

#if MIDGE_LIBFUZZER
    /// libFuzzer's entry for programs that keep their own `main` (compiler-rt FuzzerInterface.h); SwiftPM always
    /// links an executable's Swift `main`, so the driver is started from here rather than from libFuzzer's `main`.
    @_silgen_name("LLVMFuzzerRunDriver")
    func runFuzzerDriver(
        _ argc: UnsafeMutablePointer<CInt>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt

    nonisolated(unsafe) var fuzzedTarget = FuzzTarget.decoder

    /// Hands libFuzzer's argv minus our target name to its driver; a finding is a crash to libFuzzer (abort).
    func fuzz(_ target: FuzzTarget, dropFirstArgument: Bool) -> Int32 {
        fuzzedTarget = target
        setenv("MIDGE_FUZZ_TARGET", target.rawValue, 1)
        let all = (0..<Int(CommandLine.argc)).map { CommandLine.unsafeArgv[$0] }
        let kept = dropFirstArgument ? [all[0]] + all.dropFirst(2) : all
        let argv = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: kept.count + 1)
        for (index, argument) in kept.enumerated() { argv[index] = argument }
        argv[kept.count] = nil
        var argc = CInt(kept.count)
        var argvPointer = argv
        return runFuzzerDriver(&argc, &argvPointer) { data, size in
            let findings = fuzzedTarget.run(UnsafeRawBufferPointer(start: data, count: size))
            if !findings.isEmpty {
                printError("midge-fuzz \(fuzzedTarget.rawValue): invariant violated")
                for finding in findings { printError("    \(finding)") }
                abort()
            }
            return 0
        }
    }

    func main() -> Int32 {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "replay" { return replay(Array(arguments.dropFirst())) }
        if let first = arguments.first, let target = FuzzTarget(rawValue: first) {
            return fuzz(target, dropFirstArgument: true)
        }
        if let name = getenv("MIDGE_FUZZ_TARGET"), let target = FuzzTarget(rawValue: String(cString: name)) {
            return fuzz(target, dropFirstArgument: false)
        }
        return usage()
    }
#else
    func main() -> Int32 {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard let command = arguments.first else { return usage() }
        if command == "replay" { return replay(Array(arguments.dropFirst())) }
        guard let target = FuzzTarget(rawValue: command) else { return usage() }
        return runFiles(target, Array(arguments.dropFirst()))
    }
#endif

exit(main())
