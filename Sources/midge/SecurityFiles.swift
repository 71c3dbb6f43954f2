// The password file, ACL file and JWT key of one security scope: the broker's, or with `per_listener_settings true`
// one listener's. Built at start (a broken file is fatal, as in mosquitto) and re-read on SIGHUP (a broken file
// keeps the previous one).
import MidgeAuth
import MidgeCore
import MidgeServer

final class SecurityFiles {
    /// Names the scope in log lines: empty for the broker-wide one.
    let scope: String
    private(set) var passwordFile: String?
    private(set) var aclFile: String?
    private let passwords: ReloadableAuthenticator?
    private let rules: ReloadableAccessControl?
    let authenticator: any Authenticator
    let accessControl: any AccessControl

    /// Throws the message to print when a file cannot be used.
    init(
        scope: String, passwordFile: String?, aclFile: String?, tokenKey: TokenKeySetting?, tokenIssuer: String?,
        tokenAudience: String?
    ) throws(SecurityFilesError) {
        self.scope = scope
        self.passwordFile = passwordFile
        self.aclFile = aclFile
        var authenticator: any Authenticator = AllowAll()
        var accessControl: any AccessControl = AllowAll()
        do {
            passwords = try passwordFile.map { ReloadableAuthenticator(try PasswordFile(path: $0)) }
            rules = try aclFile.map { ReloadableAccessControl(try ACLFile(path: $0)) }
        } catch {
            throw SecurityFilesError(message: "\(error)")
        }
        if let passwords { authenticator = passwords }
        if let rules { accessControl = rules }
        // Token clients and password clients side by side: a JWT in the password goes to the token verifier.
        if let tokenKey {
            let algorithm: TokenAuthenticator.Algorithm
            switch tokenKey {
            case .hs256SecretFile(let path):
                guard var secret = readTextFile(path) else {
                    throw SecurityFilesError(message: "cannot read the JWT secret file \(path).")
                }
                while secret.last == "\n" || secret.last == "\r" { secret.removeLast() }
                algorithm = .hs256(secret: Array(secret.utf8))
            case .rs256PublicKey(let path):
                guard let pem = readTextFile(path) else {
                    throw SecurityFilesError(message: "cannot read the JWT public key file \(path).")
                }
                algorithm = .rs256(publicKeyPEM: pem)
            }
            var options = TokenAuthenticator.Options()
            options.issuer = tokenIssuer
            options.audience = tokenAudience
            do {
                let tokens = try TokenAuthenticator(algorithm, options: options)
                let chain = TokenOrPasswordAuthenticator(tokens: tokens, passwords: passwords, rules: accessControl)
                authenticator = chain
                accessControl = chain
            } catch {
                throw SecurityFilesError(message: "the JWT key is not usable: \(error)")
            }
        }
        self.authenticator = authenticator
        self.accessControl = accessControl
    }

    /// Takes the paths a re-read configuration names; only files that were in use are followed.
    func follow(passwordFile: String?, aclFile: String?) {
        if passwords != nil, let passwordFile { self.passwordFile = passwordFile }
        if rules != nil, let aclFile { self.aclFile = aclFile }
    }

    /// SIGHUP: reads the files again; a broken one keeps the previous content, and the log says why.
    func reload(logger: Logger) {
        let suffix = scope.isEmpty ? "" : " of \(scope)"
        if let path = passwordFile, let passwords {
            do {
                passwords.replace(with: try PasswordFile(path: path))
                logger.log(.notice, "Reloaded the password file \(path)\(suffix).")
            } catch {
                logger.log(.error, "Unable to reload the password file\(suffix), keeping the previous one: \(error)")
            }
        }
        if let path = aclFile, let rules {
            do {
                rules.replace(with: try ACLFile(path: path))
                logger.log(.notice, "Reloaded the ACL file \(path)\(suffix).")
            } catch {
                logger.log(.error, "Unable to reload the ACL file\(suffix), keeping the previous one: \(error)")
            }
        }
    }
}

struct SecurityFilesError: Error {
    let message: String
}
