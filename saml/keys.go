package saml

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// Files in the data directory that hold a generated SP key pair.
const (
	keyFile  = "saml-sp.key"
	certFile = "saml-sp.crt"
)

// A KeyPair is the SP's private key and its certificate, published in the SP metadata. It
// signs nothing by default (Entra does not require signed requests) and decrypts assertions
// an IdP encrypts to it.
type KeyPair struct {
	Key         *rsa.PrivateKey
	Certificate *x509.Certificate
}

// LoadKeyPair returns the SP key pair. With keyPath and certPath (both or neither) it reads
// those PEM files. Otherwise it reads DIR/saml-sp.key and DIR/saml-sp.crt, creating them on
// first use (a 2048-bit RSA key and a self-signed certificate valid for 10 years, mode 0600).
// The key is never logged and never written to the event log. created reports a new pair.
func LoadKeyPair(keyPath, certPath, dir string, now time.Time) (kp KeyPair, created bool, err error) {
	if (keyPath == "") != (certPath == "") {
		return KeyPair{}, false, errors.New("saml: give both --saml-key and --saml-cert, or neither")
	}
	if keyPath != "" {
		kp, err = readKeyPair(keyPath, certPath)
		return kp, false, err
	}
	keyPath, certPath = filepath.Join(dir, keyFile), filepath.Join(dir, certFile)
	kp, err = readKeyPair(keyPath, certPath)
	if !errors.Is(err, fs.ErrNotExist) {
		return kp, false, err
	}
	if _, kerr := os.Stat(keyPath); kerr == nil {
		return KeyPair{}, false, fmt.Errorf("saml: %s exists without %s", keyPath, certPath)
	}
	kp, err = GenerateKeyPair("idledger SAML SP", now)
	if err != nil {
		return KeyPair{}, false, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mustPKCS8(kp.Key)})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: kp.Certificate.Raw})
	// O_EXCL: two processes starting on one directory must not overwrite each other's key.
	if err := writeNew(keyPath, keyPEM); err != nil {
		return KeyPair{}, false, err
	}
	if err := writeNew(certPath, certPEM); err != nil {
		return KeyPair{}, false, err
	}
	return kp, true, nil
}

// GenerateKeyPair returns a fresh 2048-bit RSA key and a self-signed certificate for it, valid
// from an hour before now for 10 years.
func GenerateKeyPair(commonName string, now time.Time) (KeyPair, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return KeyPair{}, fmt.Errorf("saml: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return KeyPair{}, fmt.Errorf("saml: serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("saml: create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return KeyPair{}, fmt.Errorf("saml: parse certificate: %w", err)
	}
	return KeyPair{Key: key, Certificate: cert}, nil
}

func mustPKCS8(key *rsa.PrivateKey) []byte {
	b, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(err) // an RSA key always marshals
	}
	return b
}

func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("saml: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("saml: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("saml: sync %s: %w", path, err)
	}
	return f.Close()
}

// readKeyPair reads a PEM private key (PKCS#1 or PKCS#8 RSA) and a PEM certificate, and checks
// that they belong together.
func readKeyPair(keyPath, certPath string) (KeyPair, error) {
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return KeyPair{}, fmt.Errorf("saml: SP key: %w", err)
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return KeyPair{}, fmt.Errorf("saml: SP certificate: %w", err)
	}
	return ParseKeyPair(keyPEM, certPEM)
}

// ParseKeyPair parses a PEM RSA private key (PKCS#1 or PKCS#8) and the PEM certificate of its
// public key.
func ParseKeyPair(keyPEM, certPEM []byte) (KeyPair, error) {
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return KeyPair{}, errors.New("saml: SP key is not PEM")
	}
	var key *rsa.PrivateKey
	if k, err := x509.ParsePKCS1PrivateKey(kb.Bytes); err == nil {
		key = k
	} else {
		k8, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
		if err != nil {
			return KeyPair{}, fmt.Errorf("saml: SP key: %w", err)
		}
		switch k := k8.(type) {
		case *rsa.PrivateKey:
			key = k
		case *ecdsa.PrivateKey:
			return KeyPair{}, errors.New("saml: SP key must be RSA (XML encryption needs it)")
		default:
			return KeyPair{}, fmt.Errorf("saml: SP key type %T is not supported", k8)
		}
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return KeyPair{}, errors.New("saml: SP certificate is not a PEM CERTIFICATE")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return KeyPair{}, fmt.Errorf("saml: SP certificate: %w", err)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return KeyPair{}, errors.New("saml: SP certificate does not match the SP key")
	}
	return KeyPair{Key: key, Certificate: cert}, nil
}
