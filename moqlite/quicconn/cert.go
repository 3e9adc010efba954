package quicconn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"time"
)

// MaxHashCertValidity is the longest validity a certificate may have for
// browsers to accept it by hash (WebTransport serverCertificateHashes).
const MaxHashCertValidity = 14 * 24 * time.Hour

// SelfSignedCert makes an ECDSA P-256 certificate for hosts (names or IP
// literals) valid from now for validity, which must be positive and at
// most MaxHashCertValidity, as browsers require of certificates passed by
// hash. It returns the certificate and the SHA-256 of its DER, the value
// for serverCertificateHashes.
func SelfSignedCert(hosts []string, validity time.Duration) (tls.Certificate, [sha256.Size]byte, error) {
	var hash [sha256.Size]byte
	if validity <= 0 || validity > MaxHashCertValidity {
		return tls.Certificate{}, hash, fmt.Errorf("quicconn: certificate validity %v outside (0, %v]", validity, MaxHashCertValidity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, hash, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, hash, err
	}
	// A minute of slack before now absorbs small clock skew; it counts
	// toward the validity so the total stays within the browsers' bound.
	notBefore := time.Now().Add(-time.Minute)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "moqlite"},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, hash, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, hash, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, sha256.Sum256(der), nil
}

// PinnedClientTLS is a client tls.Config that trusts exactly the
// certificate whose DER hashes to hash, as serverCertificateHashes does.
func PinnedClientTLS(hash [sha256.Size]byte) *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true, // replaced by the pin below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || sha256.Sum256(cs.PeerCertificates[0].Raw) != hash {
				return fmt.Errorf("quicconn: server certificate does not match the pinned hash")
			}
			return nil
		},
	}
}
