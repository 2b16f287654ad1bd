package recoverycode

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"hash"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// Hasher turns a code into what the directory stores.
type Hasher struct {
	scheme v1alpha1.RecoveryCodeScheme
	// ldap prefixes the scheme the way LDAP userPassword values name it
	// ({SSHA512}, {ARGON2}).
	ldap bool
	// Argon2id cost.
	memoryKiB, iterations uint32
	parallelism           uint8
	bcryptCost            int
}

// Costs of the hash schemes, as the UserDirectory sets them (zero: the
// default).
type Costs struct {
	MemoryKiB, Iterations, Parallelism, BcryptCost int32
}

// Default costs: argon2id with 19 MiB and 2 passes, bcrypt 10, the
// minimums OWASP's password storage guidance gives for each.
const (
	DefaultMemoryKiB   = 19 * 1024
	DefaultIterations  = 2
	DefaultParallelism = 1
	DefaultBcryptCost  = 10
)

// NewHasher returns the hasher of scheme. ldap selects the LDAP form of
// the value ({SCHEME}...) over the PHC string an SQL column holds.
func NewHasher(scheme v1alpha1.RecoveryCodeScheme, ldap bool, c Costs) (*Hasher, error) {
	h := &Hasher{scheme: scheme, ldap: ldap,
		memoryKiB: DefaultMemoryKiB, iterations: DefaultIterations, parallelism: DefaultParallelism, bcryptCost: DefaultBcryptCost}
	if c.MemoryKiB > 0 {
		h.memoryKiB = uint32(c.MemoryKiB)
	}
	if c.Iterations > 0 {
		h.iterations = uint32(c.Iterations)
	}
	if c.Parallelism > 0 {
		h.parallelism = uint8(min(c.Parallelism, 255))
	}
	if c.BcryptCost > 0 {
		h.bcryptCost = int(c.BcryptCost)
	}
	switch scheme {
	case v1alpha1.SchemeSSHA512, v1alpha1.SchemeSSHA256:
		if !ldap {
			return nil, fmt.Errorf("scheme %s is an LDAP scheme; an SQL column holds a PHC hash (Argon2id or Bcrypt)", scheme)
		}
	case v1alpha1.SchemeArgon2id:
	case v1alpha1.SchemeBcrypt:
		if ldap {
			return nil, fmt.Errorf("scheme %s is not one slapd verifies; use SSHA512, SSHA256 or Argon2id", scheme)
		}
		if h.bcryptCost < bcrypt.MinCost || h.bcryptCost > bcrypt.MaxCost {
			return nil, fmt.Errorf("bcryptCost %d is outside %d..%d", h.bcryptCost, bcrypt.MinCost, bcrypt.MaxCost)
		}
	case v1alpha1.SchemePlain:
	default:
		return nil, fmt.Errorf("unknown scheme %q", scheme)
	}
	return h, nil
}

// Scheme is the hasher's scheme.
func (h *Hasher) Scheme() v1alpha1.RecoveryCodeScheme { return h.scheme }

// Hash returns the stored form of code, with a fresh salt.
func (h *Hasher) Hash(code string) (string, error) {
	switch h.scheme {
	case v1alpha1.SchemeSSHA512:
		return ssha("{SSHA512}", sha512.New(), code)
	case v1alpha1.SchemeSSHA256:
		return ssha("{SSHA256}", sha256.New(), code)
	case v1alpha1.SchemeArgon2id:
		salt, err := salt(16)
		if err != nil {
			return "", err
		}
		key := argon2.IDKey([]byte(code), salt, h.iterations, h.memoryKiB, h.parallelism, 32)
		phc := fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, h.memoryKiB, h.iterations, h.parallelism,
			b64(salt), b64(key))
		if h.ldap {
			return "{ARGON2}" + phc, nil
		}
		return phc, nil
	case v1alpha1.SchemeBcrypt:
		b, err := bcrypt.GenerateFromPassword([]byte(code), h.bcryptCost)
		return string(b), err
	}
	// Plain: the server hashes it (SCIM's write-only password).
	return code, nil
}

func ssha(prefix string, hf hash.Hash, code string) (string, error) {
	s, err := salt(8)
	if err != nil {
		return "", err
	}
	hf.Write([]byte(code))
	hf.Write(s)
	return prefix + base64.StdEncoding.EncodeToString(append(hf.Sum(nil), s...)), nil
}

func salt(n int) ([]byte, error) {
	s := make([]byte, n)
	if _, err := rand.Read(s); err != nil {
		return nil, fmt.Errorf("reading a random salt: %w", err)
	}
	return s, nil
}

func b64(b []byte) string { return base64.RawStdEncoding.EncodeToString(b) }

// Verify tells whether stored, in any form Hash writes, holds code.
func Verify(stored, code string) (bool, error) {
	switch {
	case strings.HasPrefix(stored, "{SSHA512}"):
		return verifySSHA(stored[len("{SSHA512}"):], sha512.New(), sha512.Size, code)
	case strings.HasPrefix(stored, "{SSHA256}"):
		return verifySSHA(stored[len("{SSHA256}"):], sha256.New(), sha256.Size, code)
	case strings.HasPrefix(stored, "{ARGON2}"):
		return verifyArgon2id(stored[len("{ARGON2}"):], code)
	case strings.HasPrefix(stored, "$argon2id$"):
		return verifyArgon2id(stored, code)
	case strings.HasPrefix(stored, "$2"):
		err := bcrypt.CompareHashAndPassword([]byte(stored), []byte(code))
		return err == nil, nil
	}
	return false, fmt.Errorf("the stored value is in no scheme this package writes")
}

func verifySSHA(enc string, hf hash.Hash, size int, code string) (bool, error) {
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(raw) <= size {
		return false, fmt.Errorf("a malformed salted SHA-2 value")
	}
	hf.Write([]byte(code))
	hf.Write(raw[size:])
	return subtle.ConstantTimeCompare(hf.Sum(nil), raw[:size]) == 1, nil
}

func verifyArgon2id(phc, code string) (bool, error) {
	parts := strings.Split(phc, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, fmt.Errorf("a malformed argon2id value")
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false, fmt.Errorf("a malformed argon2id value: %v", err)
	}
	s, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	k, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil {
		return false, fmt.Errorf("a malformed argon2id value")
	}
	got := argon2.IDKey([]byte(code), s, t, m, p, uint32(len(k)))
	return subtle.ConstantTimeCompare(got, k) == 1, nil
}
