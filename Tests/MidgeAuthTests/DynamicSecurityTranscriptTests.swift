// What mosquitto 2.0.11 with its dynamic-security plugin answered to a sequence of requests, starting from the file
// `mosquitto_ctrl dynsec init` wrote: request and response lines in turn, recorded with mosquitto_pub/mosquitto_sub on
// $CONTROL/dynamic-security/v1. Midge must answer the same bytes.
import XCTest

@testable import MidgeAuth

let mosquittoTranscript = #"""
    {"commands":[{"command":"createClient","username":"u1","password":"p"}]}
    {"responses":[{"command":"createClient"}]}
    {"commands":[{"command":"createClient","username":"u1","password":"p"}]}
    {"responses":[{"command":"createClient","error":"Client already exists"}]}
    {"commands":[{"command":"createRole","rolename":"r1"}]}
    {"responses":[{"command":"createRole"}]}
    {"commands":[{"command":"addClientRole","username":"u1","rolename":"r1","priority":3}]}
    {"responses":[{"command":"addClientRole"}]}
    {"commands":[{"command":"addClientRole","username":"u1","rolename":"r1"}]}
    {"responses":[{"command":"addClientRole","error":"Internal error"}]}
    {"commands":[{"command":"removeClientRole","username":"u1","rolename":"r1"}]}
    {"responses":[{"command":"removeClientRole"}]}
    {"commands":[{"command":"removeClientRole","username":"u1","rolename":"r1"}]}
    {"responses":[{"command":"removeClientRole"}]}
    {"commands":[{"command":"createGroup","groupname":"g1"}]}
    {"responses":[{"command":"createGroup"}]}
    {"commands":[{"command":"createGroup","groupname":"g1"}]}
    {"responses":[{"command":"createGroup","error":"Group already exists"}]}
    {"commands":[{"command":"addGroupClient","groupname":"g1","username":"u1"}]}
    {"responses":[{"command":"addGroupClient"}]}
    {"commands":[{"command":"addGroupClient","groupname":"g1","username":"u1"}]}
    {"responses":[{"command":"addGroupClient","error":"Client is already in this group"}]}
    {"commands":[{"command":"addGroupRole","groupname":"g1","rolename":"r1","priority":2}]}
    {"responses":[{"command":"addGroupRole"}]}
    {"commands":[{"command":"addGroupRole","groupname":"g1","rolename":"r1"}]}
    {"responses":[{"command":"addGroupRole","error":"Group is already in this role"}]}
    {"commands":[{"command":"getGroup","groupname":"g1"}]}
    {"responses":[{"command":"getGroup","data":{"group":{"groupname":"g1","clients":[{"username":"u1"}],"roles":[{"rolename":"r1","priority":2}]}}}]}
    {"commands":[{"command":"getClient","username":"u1"}]}
    {"responses":[{"command":"getClient","data":{"client":{"username":"u1","roles":[],"groups":[{"groupname":"g1"}]}}}]}
    {"commands":[{"command":"addRoleACL","rolename":"r1","acltype":"publishClientSend","topic":"a/#","allow":true}]}
    {"responses":[{"command":"addRoleACL"}]}
    {"commands":[{"command":"addRoleACL","rolename":"r1","acltype":"publishClientSend","topic":"a/#","allow":true}]}
    {"responses":[{"command":"addRoleACL","error":"ACL with this topic already exists"}]}
    {"commands":[{"command":"addRoleACL","rolename":"r1","acltype":"subscribeLiteral","topic":"a/#/b","allow":true}]}
    {"responses":[{"command":"addRoleACL","error":"Invalid ACL topic"}]}
    {"commands":[{"command":"addRoleACL","rolename":"r1","acltype":"nope","topic":"a","allow":true}]}
    {"responses":[{"command":"addRoleACL","error":"Unknown acltype"}]}
    {"commands":[{"command":"addRoleACL","rolename":"r1","topic":"a","allow":true}]}
    {"responses":[{"command":"addRoleACL","error":"Invalid/missing acltype"}]}
    {"commands":[{"command":"removeRoleACL","rolename":"r1","acltype":"publishClientSend","topic":"zz"}]}
    {"responses":[{"command":"removeRoleACL","error":"ACL not found"}]}
    {"commands":[{"command":"getRole","rolename":"r1"}]}
    {"responses":[{"command":"getRole","data":{"role":{"rolename":"r1","acls":[{"acltype":"publishClientSend","topic":"a/#","priority":0,"allow":true}]}}}]}
    {"commands":[{"command":"listRoles","verbose":true}]}
    {"responses":[{"command":"listRoles","data":{"totalCount":2,"roles":[{"rolename":"admin","acls":[{"acltype":"publishClientSend","topic":"$CONTROL/dynamic-security/#","priority":0,"allow":true},{"acltype":"publishClientReceive","topic":"$CONTROL/dynamic-security/#","priority":0,"allow":true},{"acltype":"publishClientReceive","topic":"$SYS/#","priority":0,"allow":true},{"acltype":"publishClientReceive","topic":"#","priority":0,"allow":true},{"acltype":"subscribePattern","topic":"$CONTROL/dynamic-security/#","priority":0,"allow":true},{"acltype":"subscribePattern","topic":"$SYS/#","priority":0,"allow":true},{"acltype":"subscribePattern","topic":"#","priority":0,"allow":true},{"acltype":"unsubscribePattern","topic":"#","priority":0,"allow":true}]},{"rolename":"r1","acls":[{"acltype":"publishClientSend","topic":"a/#","priority":0,"allow":true}]}]}}]}
    {"commands":[{"command":"listClients","verbose":true}]}
    {"responses":[{"command":"listClients","data":{"totalCount":2,"clients":[{"username":"admin","textname":"Dynsec admin user","roles":[{"rolename":"admin"}],"groups":[]},{"username":"u1","roles":[],"groups":[{"groupname":"g1"}]}]}}]}
    {"commands":[{"command":"listGroups","verbose":true,"count":1}]}
    {"responses":[{"command":"listGroups","data":{"totalCount":1,"groups":[{"groupname":"g1","clients":[{"username":"u1"}],"roles":[{"rolename":"r1","priority":2}]}]}}]}
    {"commands":[{"command":"setAnonymousGroup","groupname":"nope"}]}
    {"responses":[{"command":"setAnonymousGroup","error":"Group not found"}]}
    {"commands":[{"command":"setAnonymousGroup","groupname":"g1"}]}
    {"responses":[{"command":"setAnonymousGroup"}]}
    {"commands":[{"command":"getAnonymousGroup"}]}
    {"responses":[{"command":"getAnonymousGroup","data":{"group":{"groupname":"g1"}}}]}
    {"commands":[{"command":"modifyClient","username":"u1","roles":[{"rolename":"nope"}]}]}
    {"responses":[{"command":"modifyClient","error":"Role not found"}]}
    {"commands":[{"command":"modifyClient","username":"u1","textname":"T","roles":[{"rolename":"r1"}]}]}
    {"responses":[{"command":"modifyClient"}]}
    {"commands":[{"command":"modifyRole","rolename":"r9"}]}
    {"responses":[{"command":"modifyRole","error":"Role does not exist"}]}
    {"commands":[{"command":"modifyRole","rolename":"r1","acls":[{"acltype":"subscribePattern","topic":"x/#","allow":true}]}]}
    {"responses":[{"command":"modifyRole"}]}
    {"commands":[{"command":"getRole","rolename":"r1"}]}
    {"responses":[{"command":"getRole","data":{"role":{"rolename":"r1","acls":[{"acltype":"subscribePattern","topic":"x/#","priority":0,"allow":true}]}}}]}
    {"commands":[{"command":"setClientId","username":"u1","clientid":"cid"}]}
    {"responses":[{"command":"setClientId"}]}
    {"commands":[{"command":"getClient","username":"u1"}]}
    {"responses":[{"command":"getClient","data":{"client":{"username":"u1","clientid":"cid","textname":"T","roles":[{"rolename":"r1"}],"groups":[{"groupname":"g1"}]}}}]}
    {"commands":[{"command":"setClientId","username":"u1"}]}
    {"responses":[{"command":"setClientId"}]}
    {"commands":[{"command":"setDefaultACLAccess","acls":[{"acltype":"publishClientSend","allow":true}]}]}
    {"responses":[{"command":"setDefaultACLAccess"}]}
    {"commands":[{"command":"getDefaultACLAccess","correlationData":"c7"}]}
    {"responses":[{"command":"getDefaultACLAccess","data":{"acls":[{"acltype":"publishClientSend","allow":true},{"acltype":"publishClientReceive","allow":true},{"acltype":"subscribe","allow":false},{"acltype":"unsubscribe","allow":true}]},"correlationData":"c7"}]}
    {"commands":[{"command":"setDefaultACLAccess"}]}
    {"responses":[{"command":"setDefaultACLAccess","error":"Missing/invalid actions array"}]}
    {"commands":[{"command":"deleteRole","rolename":"r1"}]}
    {"responses":[{"command":"deleteRole"}]}
    {"commands":[{"command":"getClient","username":"u1"}]}
    {"responses":[{"command":"getClient","data":{"client":{"username":"u1","textname":"T","roles":[],"groups":[{"groupname":"g1"}]}}}]}
    {"commands":[{"command":"deleteClient","username":"u1"}]}
    {"responses":[{"command":"deleteClient"}]}
    {"commands":[{"command":"deleteClient","username":"u1"}]}
    {"responses":[{"command":"deleteClient","error":"Client not found"}]}
    {"commands":[{"command":"GETDEFAULTACLACCESS"}]}
    {"responses":[{"command":"getDefaultACLAccess","data":{"acls":[{"acltype":"publishClientSend","allow":true},{"acltype":"publishClientReceive","allow":true},{"acltype":"subscribe","allow":false},{"acltype":"unsubscribe","allow":true}]}}]}
    {"commands":[{"command":"createClient"}]}
    {"responses":[{"command":"createClient","error":"Invalid/missing username"}]}
    {"commands":[{"command":"createClient","username":"x","password":5}]}
    {"responses":[{"command":"createClient","error":"Invalid/missing password"}]}
    {"commands":[{"command":"createClient","username":"y","roles":"r"}]}
    {"responses":[{"command":"createClient","error":"'roles' not an array or missing/invalid rolename"}]}
    {"commands":[{"command":"createClient","username":"z","groups":[{"groupname":"nope"}]}]}
    {"responses":[{"command":"createClient","error":"Group not found"}]}
    {"commands":[{"command":"createGroup","groupname":"g2","roles":[{"rolename":"nope"}]}]}
    {"responses":[{"command":"createGroup","error":"Role not found"}]}
    {"commands":[{"command":"setClientPassword","username":"nobody","password":"x"}]}
    {"responses":[{"command":"setClientPassword","error":"Client not found"}]}
    {"commands":[{"command":"listClients"}]}
    {"responses":[{"command":"listClients","data":{"totalCount":1,"clients":["admin"]}}]}
    {"commands":"x"}
    {"responses":[{"command":"Unknown command","error":"Invalid/missing commands"}]}
    {"nocommands":1}
    {"responses":[{"command":"Unknown command","error":"Invalid/missing commands"}]}
    {"commands":[5,{"x":1}]}
    {"responses":[{"command":"Unknown command","error":"Command not an object"},{"command":"Unknown command","error":"Missing command"}]}
    """#

final class DynamicSecurityTranscriptTests: XCTestCase {
    func testAnswersAreMosquittosByteForByte() throws {
        let security = DynamicSecurity(
            state: try DynamicSecurityState.load(bytes: Array(initFile.utf8), source: "init"), path: nil)
        let lines = mosquittoTranscript.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count % 2, 0)
        for index in stride(from: 0, to: lines.count - 1, by: 2) {
            let reply = security.handle(payload: Array(lines[index].utf8), clientID: "ctl", username: "admin")
            XCTAssertEqual(String(decoding: reply.response, as: UTF8.self), lines[index + 1], lines[index])
        }
    }
}
