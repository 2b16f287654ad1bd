// Package recoverycode makes and checks recovery codes: personal codes with
// which a user gets (back) into an account without e-mail, handed out on
// paper or in an invitation.
//
// A generated code is derived from a random key of the import and the
// user's identity (HMAC-SHA256), so that a worker that is stopped and run
// again computes the same code for the same user instead of issuing a
// second one. Codes are written in groups of an alphabet without
// look-alikes (no 0/O, no 1/l/I), and carry at least MinBits of entropy.
package recoverycode

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"unicode"
)

// Alphabet is the alphabet of generated codes: digits and capitals
// without the characters people mistake for one another.
const Alphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

const (
	groups    = 4
	groupSize = 5
	// MinBits is the least entropy of a code, generated or imported.
	MinBits = 80
	// KeySize is the size of an import's key in bytes.
	KeySize = 32
)

// Bits is the entropy of a generated code: 20 characters of a 31-letter
// alphabet, 99 bits.
var Bits = float64(groups*groupSize) * math.Log2(float64(len(Alphabet)))

// NewKey returns a random key for an import's codes.
func NewKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("reading random bytes for the recovery code key: %w", err)
	}
	return k, nil
}

// Generator derives the codes of one import.
type Generator struct {
	key []byte
}

// NewGenerator returns the generator of key, which must be KeySize bytes.
func NewGenerator(key []byte) (*Generator, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("the recovery code key has %d bytes, want %d", len(key), KeySize)
	}
	return &Generator{key: key}, nil
}

var alphabetSize = big.NewInt(int64(len(Alphabet)))

// Code returns the code of identity: the same for the same key and
// identity, unrelated for any other. The HMAC has 256 bits and the code
// 99, so reducing it modulo the code space leaves no bias worth naming.
//
// Every code holds a capital, a digit and a dash: the three classes of
// characters a password policy such as Active Directory's complexity
// rule asks for. The one code in about 400 drawn without a digit (or,
// far rarer, without a capital) has its last character mapped to one,
// which costs less than a bit of its 99.
func (g *Generator) Code(identity string) string {
	m := hmac.New(sha256.New, g.key)
	m.Write([]byte(identity))
	n := new(big.Int).SetBytes(m.Sum(nil))
	var b strings.Builder
	b.Grow(groups*groupSize + groups - 1)
	d := new(big.Int)
	for i := range groups * groupSize {
		if i > 0 && i%groupSize == 0 {
			b.WriteByte('-')
		}
		n.DivMod(n, alphabetSize, d)
		b.WriteByte(Alphabet[d.Int64()])
	}
	code := []byte(b.String())
	last := len(code) - 1
	const digits, capitals = "23456789", "ABCDEFGHJKMNPQRSTUVWXYZ"
	switch i := strings.IndexByte(Alphabet, code[last]); {
	case !strings.ContainsAny(string(code), digits):
		code[last] = digits[i%len(digits)]
	case !strings.ContainsAny(string(code), capitals):
		code[last] = capitals[i%len(capitals)]
	}
	return string(code)
}

// ErrWeak is the error of a code with too little entropy.
var ErrWeak = errors.New("too weak")

// Check tells whether an imported code is as strong as a generated one.
// Its entropy is estimated from its length and the classes of characters
// it uses (separators - and space do not count); a code made of one
// repeated character counts as one character. The error names the bits
// found, never the code.
func Check(code string) error {
	bits := Strength(code)
	if bits < MinBits {
		return fmt.Errorf("%w: about %.0f bits of entropy, at least %d needed (for example 20 characters of digits and capitals)", ErrWeak, bits, MinBits)
	}
	return nil
}

// Strength estimates the entropy of code in bits.
func Strength(code string) float64 {
	var digits, upper, lower, other bool
	n := 0
	distinct := map[rune]bool{}
	for _, r := range code {
		switch {
		case r == '-' || r == ' ':
			continue
		case unicode.IsDigit(r):
			digits = true
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsLower(r):
			lower = true
		default:
			other = true
		}
		distinct[r] = true
		n++
	}
	if len(distinct) <= 1 {
		n = min(n, 1)
	}
	size := 0
	for _, c := range []struct {
		on   bool
		size int
	}{{digits, 10}, {upper, 26}, {lower, 26}, {other, 33}} {
		if c.on {
			size += c.size
		}
	}
	if size == 0 {
		return 0
	}
	return float64(n) * math.Log2(float64(size))
}
