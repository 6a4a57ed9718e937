package eventstore

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/idledger/idledger/domain"
)

// Crypto-shredding of personal data (README "Personal data", docs/event-model.md §2.9).
//
// Every personal value of an event (domain.MapPersonal says which) is stored as a sealed
// string:
//
//	idl:sealed:1:<key id>:<base64 of nonce ‖ AES-256-GCM ciphertext of the value's JSON>
//
// under the data key of the person it belongs to, with a random 96-bit nonce and the
// additional data "idl-seal-v1", tenant, user id and event type, so a sealed value cannot be
// moved to another person, company or event type without failing to open. Data keys are kept
// wrapped under the master key in IDL_DATA_KEYS (keys.go); erasing a person destroys their
// key, and from then on their values read back as domain.ErasedValue. The hash chain covers
// the stored (sealed) bytes, so an erasure changes nothing the chain checks.

// sealedPrefix starts every sealed value.
const sealedPrefix = "idl:sealed:1:"

// MasterKeySize is the size of the master key (AES-256).
const MasterKeySize = 32

// A MasterKey wraps the data keys (the key-encryption key). The same master key must be given
// to every instance sharing a log.
type MasterKey struct {
	aead cipher.AEAD
	// id names the key without revealing it: the first bytes of its SHA-256, stored with
	// each wrapped data key so that a wrong master key is told apart from a damaged record.
	id string
}

// NewMasterKey returns the master key made of the 32 bytes b.
func NewMasterKey(b []byte) (*MasterKey, error) {
	if len(b) != MasterKeySize {
		return nil, fmt.Errorf("eventstore: master key: %d bytes, want %d", len(b), MasterKeySize)
	}
	aead, err := newGCM(b)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append([]byte("idl-master-key-id\x00"), b...))
	return &MasterKey{aead: aead, id: hex.EncodeToString(sum[:8])}, nil
}

// ID returns a public fingerprint of the key (not the key).
func (k *MasterKey) ID() string { return k.id }

// ReadMasterKeyFile reads a master key file: 64 hexadecimal digits (surrounding white space
// is ignored) or the 32 raw bytes.
func ReadMasterKeyFile(path string) (*MasterKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("eventstore: master key: %w", err)
	}
	if t := strings.TrimSpace(string(b)); len(t) == 2*MasterKeySize {
		if raw, err := hex.DecodeString(t); err == nil {
			return NewMasterKey(raw)
		}
	}
	if len(b) == MasterKeySize {
		return NewMasterKey(b)
	}
	return nil, fmt.Errorf("eventstore: master key %s: want 64 hexadecimal digits or %d raw bytes", path, MasterKeySize)
}

// WriteNewMasterKeyFile creates path (mode 0600, failing if it exists) holding a new random
// master key in hexadecimal, and returns the key.
func WriteNewMasterKeyFile(path string) (*MasterKey, error) {
	raw := make([]byte, MasterKeySize)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("eventstore: master key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("eventstore: master key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("eventstore: master key: %w", err)
	}
	if _, err := f.WriteString(hex.EncodeToString(raw) + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("eventstore: master key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("eventstore: master key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("eventstore: master key: %w", err)
	}
	return NewMasterKey(raw)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("eventstore: aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("eventstore: gcm: %w", err)
	}
	return aead, nil
}

// seal encrypts plain with a random nonce; the result is nonce ‖ ciphertext.
func seal(aead cipher.AEAD, plain, ad []byte) ([]byte, error) {
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("eventstore: nonce: %w", err)
	}
	return aead.Seal(out, out, plain, ad), nil
}

// open reverses seal.
func open(aead cipher.AEAD, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("eventstore: sealed value too short")
	}
	n := aead.NonceSize()
	return aead.Open(nil, sealed[:n], sealed[n:], ad)
}

// wrapAD is the additional data of a wrapped data key: its id.
func wrapAD(keyID string) []byte { return []byte("idl-dk-v1\x00" + keyID) }

// wrap seals a data key under the master key.
func (k *MasterKey) wrap(keyID string, dk []byte) ([]byte, error) {
	return seal(k.aead, dk, wrapAD(keyID))
}

// unwrap opens a wrapped data key.
func (k *MasterKey) unwrap(keyID string, wrapped []byte) ([]byte, error) {
	dk, err := open(k.aead, wrapped, wrapAD(keyID))
	if err != nil {
		return nil, fmt.Errorf("eventstore: data key %s does not open under master key %s: %w", keyID, k.id, err)
	}
	return dk, nil
}

// valueAD is the additional data of a sealed value.
func valueAD(tenant domain.TenantID, user domain.UserID, eventType string) []byte {
	return []byte("idl-seal-v1\x00" + string(tenant) + "\x00" + string(user) + "\x00" + eventType)
}

// sealValue returns v sealed under the data key dk (named keyID).
func sealValue(dk *dataKey, ad []byte, v any) (string, error) {
	plain, err := valueJSON(v)
	if err != nil {
		return "", fmt.Errorf("eventstore: seal: %w", err)
	}
	ct, err := seal(dk.aead, plain, ad)
	if err != nil {
		return "", err
	}
	n := len(sealedPrefix) + len(dk.id) + 1
	out := make([]byte, n+base64.RawStdEncoding.EncodedLen(len(ct)))
	copy(out, sealedPrefix)
	copy(out[len(sealedPrefix):], dk.id)
	out[n-1] = ':'
	base64.RawStdEncoding.Encode(out[n:], ct)
	return string(out), nil
}

// valueJSON returns the JSON of a personal value. Most are short strings, written here
// directly when they need no escaping (the bytes encoding/json would write); anything else
// goes through encoding/json.
func valueJSON(v any) ([]byte, error) {
	if s, ok := v.(string); ok {
		b := make([]byte, 0, len(s)+2)
		b = append(b, '"')
		b = append(b, s...)
		b = append(b, '"')
		if plainJSONString(b[1 : len(b)-1]) {
			return b, nil
		}
	}
	return json.Marshal(v)
}

// plainJSONString reports whether s is valid UTF-8 that a JSON string holds as it is: no
// quote, backslash or control character, and none of <, >, &, U+2028, U+2029 (which
// encoding/json escapes).
func plainJSONString(s []byte) bool {
	ascii := true
	for _, c := range s {
		switch {
		case c < 0x20, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return ascii || (utf8.Valid(s) && !bytes.Contains(s, []byte("\u2028")) && !bytes.Contains(s, []byte("\u2029")))
}

// parseSealed splits a sealed value into its key id and ciphertext; ok is false for any other
// value.
func parseSealed(v any) (keyID string, ct []byte, ok bool) {
	s, isString := v.(string)
	if !isString || !strings.HasPrefix(s, sealedPrefix) {
		return "", nil, false
	}
	keyID, b64, found := strings.Cut(s[len(sealedPrefix):], ":")
	if !found || keyID == "" {
		return "", nil, false
	}
	ct, err := base64.RawStdEncoding.DecodeString(b64)
	if err != nil {
		return "", nil, false
	}
	return keyID, ct, true
}

// openValue decodes a sealed value's plaintext JSON into the generic form the domain's
// payloads hold (JSON numbers as float64, as encoding/json decodes them into any).
func openValue(dk *dataKey, ad, ct []byte) (any, error) {
	plain, err := open(dk.aead, ct, ad)
	if err != nil {
		return nil, fmt.Errorf("eventstore: open sealed value: %w", err)
	}
	// A string without escapes (valueJSON's fast path) is taken as it is.
	if n := len(plain); n >= 2 && plain[0] == '"' && plain[n-1] == '"' && plainJSONString(plain[1:n-1]) {
		return string(plain[1 : n-1]), nil
	}
	var v any
	if err := json.Unmarshal(plain, &v); err != nil {
		return nil, fmt.Errorf("eventstore: open sealed value: %w", err)
	}
	return v, nil
}

// DefaultMasterKeyFile is the master key's file in the data dir when none is given.
const DefaultMasterKeyFile = "master.key"

// LoadMasterKey returns the master key in file or, if file is empty, in DIR/master.key. With
// generate, a missing DIR/master.key is created (mode 0600) and created is true: the caller
// must tell the operator to back it up, since without it no personal data can be read back.
// Without generate a missing default file returns nil (a data dir from before encryption).
func LoadMasterKey(dir, file string, generate bool) (k *MasterKey, created bool, err error) {
	if file != "" {
		k, err = ReadMasterKeyFile(file)
		return k, false, err
	}
	path := filepath.Join(dir, DefaultMasterKeyFile)
	k, err = ReadMasterKeyFile(path)
	if err == nil {
		return k, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	if !generate {
		return nil, false, nil
	}
	k, err = WriteNewMasterKeyFile(path)
	return k, err == nil, err
}
