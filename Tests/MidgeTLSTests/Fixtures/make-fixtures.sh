#!/usr/bin/env bash
# Regenerates the TLS test fixtures in this directory with the openssl CLI: two CAs, a server certificate for
# localhost / 127.0.0.1 / ::1 (and its key encrypted), client certificates with and without a common name, one whose
# subject needs RFC 2253 escaping, one signed by the other CA, and one revoked by the CA's revocation list (ca.crl;
# ca-empty.crl revokes nothing).
# Valid for 100 years so the committed files do not expire under the tests or the interop scripts.
# The keys are for tests only; never use them anywhere else.
set -euo pipefail
cd "$(dirname "$0")"
DAYS=36500

rm -f -- *.crt *.key *.csr *.srl *.crl

ca() { # name subject
    openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days "$DAYS" -keyout "$1.key" -out "$1.crt" \
        -subj "$2" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash"
}

leaf() { # name subject ca extensions
    openssl req -new -newkey rsa:2048 -nodes -sha256 -keyout "$1.key" -out "$1.csr" -subj "$2"
    openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial -sha256 -days "$DAYS" \
        -out "$1.crt" -extfile <(printf '%s\n' "$4")
    rm -f "$1.csr"
}

SERVER_EXT='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid'
CLIENT_EXT='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid'

ca ca "/O=Midge Test/CN=Midge Test CA"
ca other-ca "/O=Midge Test/CN=Midge Other Test CA"
leaf server "/O=Midge Test/CN=localhost" ca "$SERVER_EXT"
leaf client "/O=Midge Test/OU=Devices/CN=device-42" ca "$CLIENT_EXT"
leaf client-no-cn "/O=Midge Test/OU=Devices" ca "$CLIENT_EXT"
leaf other-client "/O=Midge Test/CN=intruder" other-ca "$CLIENT_EXT"
leaf client-escaped "/O=Midge Test/OU=Devices/CN=Doe\\, Jane" ca "$CLIENT_EXT"
leaf revoked-client "/O=Midge Test/OU=Devices/CN=revoked-device" ca "$CLIENT_EXT"
rm -f -- *.srl
# The server key under a passphrase: a server must refuse it with a reason rather than prompt for the passphrase.
openssl pkey -in server.key -aes256 -passout pass:midge-test -out server-encrypted.key

openssl verify -CAfile ca.crt -verify_ip 127.0.0.1 -verify_hostname localhost -purpose sslserver server.crt

# Revocation lists as `openssl ca` makes them, from a throwaway CA database: one before and one after revoking
# revoked-client.crt. Valid as long as the certificates, so CRL checks never fail for an expired list.
crl() { # output
    openssl ca -config "$CA_DB/ca.cnf" -gencrl -keyfile ca.key -cert ca.crt -out "$1"
}
CA_DB=$(mktemp -d)
trap 'rm -rf "$CA_DB"' EXIT
: >"$CA_DB/index.txt"
echo 01 >"$CA_DB/crlnumber"
printf '%s\n' '[ca]' 'default_ca = fixtures' '[fixtures]' "database = $CA_DB/index.txt" \
    "crlnumber = $CA_DB/crlnumber" 'default_md = sha256' "default_crl_days = $DAYS" >"$CA_DB/ca.cnf"
crl ca-empty.crl
openssl ca -config "$CA_DB/ca.cnf" -keyfile ca.key -cert ca.crt -revoke revoked-client.crt -crl_reason keyCompromise
crl ca.crl

openssl verify -CAfile ca.crt -purpose sslclient client.crt client-no-cn.crt client-escaped.crt
openssl verify -CAfile ca.crt -CRLfile ca.crl -crl_check -purpose sslclient client.crt client-escaped.crt
if openssl verify -CAfile ca.crt -CRLfile ca.crl -crl_check revoked-client.crt; then
    echo "revoked-client.crt still verifies against ca.crl" >&2
    exit 1
fi
