package ldap

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/go-ldap/ldap/v3"
)

// The few LDAP messages a pipe sends and reads, encoded and decoded in
// place (RFC 4511, BER with definite lengths). The rest of the provider
// uses go-ldap.

const (
	tagInteger     = 0x02
	tagOctetString = 0x04
	tagEnumerated  = 0x0a
	tagSequence    = 0x30
	tagSet         = 0x31

	tagBindRequest      = 0x60 // [APPLICATION 0] constructed
	tagAddRequest       = 0x68
	tagAddResponse      = 0x69
	tagExtendedRequest  = 0x77
	tagExtendedResponse = 0x78
	tagSimpleAuth       = 0x80 // [0] primitive
	tagExtendedName     = 0x80

	oidStartTLS = "1.3.6.1.4.1.1466.20037"

	// maxResponse bounds a response a pipe reads: results of adds, binds
	// and StartTLS are small.
	maxResponse = 1 << 20
)

// lenSize is the size of the encoding of length n.
func lenSize(n int) int {
	switch {
	case n < 0x80:
		return 1
	case n <= 0xff:
		return 2
	case n <= 0xffff:
		return 3
	case n <= 0xffffff:
		return 4
	}
	return 5
}

// tlvSize is the size of a whole element whose contents are n bytes.
func tlvSize(n int) int { return 1 + lenSize(n) + n }

func appendHeader(b []byte, tag byte, n int) []byte {
	b = append(b, tag)
	switch lenSize(n) {
	case 1:
		return append(b, byte(n))
	case 2:
		return append(b, 0x81, byte(n))
	case 3:
		return append(b, 0x82, byte(n>>8), byte(n))
	case 4:
		return append(b, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendString(b []byte, tag byte, s string) []byte {
	return append(appendHeader(b, tag, len(s)), s...)
}

// intSize is the size of the two's complement encoding of a
// non-negative v.
func intSize(v int32) int {
	n := 1
	for v > 0x7f {
		v >>= 8
		n++
	}
	return n
}

func appendInt(b []byte, tag byte, v int32) []byte {
	n := intSize(v)
	b = append(b, tag, byte(n))
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// appendMessage wraps an operation of opSize bytes, appended by op, in an
// LDAPMessage with id.
func appendMessage(b []byte, id int32, opSize int, op func([]byte) []byte) []byte {
	b = appendHeader(b, tagSequence, 2+intSize(id)+opSize)
	b = appendInt(b, tagInteger, id)
	return op(b)
}

func valuesSize(values []string) int {
	n := 0
	for _, v := range values {
		n += tlvSize(len(v))
	}
	return n
}

func attrSize(name string, values []string) int {
	return tlvSize(tlvSize(len(name)) + tlvSize(valuesSize(values)))
}

func appendAttr(b []byte, name string, values []string) []byte {
	vs := valuesSize(values)
	b = appendHeader(b, tagSequence, tlvSize(len(name))+tlvSize(vs))
	b = appendString(b, tagOctetString, name)
	b = appendHeader(b, tagSet, vs)
	for _, v := range values {
		b = appendString(b, tagOctetString, v)
	}
	return b
}

// appendAdd appends the AddRequest for entry dn with the object classes
// and attributes.
func appendAdd(b []byte, id int32, dn string, objectClasses []string, attrs attrList) []byte {
	list := attrSize("objectClass", objectClasses)
	for _, a := range attrs {
		list += attrSize(a.name, a.values)
	}
	req := tlvSize(len(dn)) + tlvSize(list)
	return appendMessage(b, id, tlvSize(req), func(b []byte) []byte {
		b = appendHeader(b, tagAddRequest, req)
		b = appendString(b, tagOctetString, dn)
		b = appendHeader(b, tagSequence, list)
		b = appendAttr(b, "objectClass", objectClasses)
		for _, a := range attrs {
			b = appendAttr(b, a.name, a.values)
		}
		return b
	})
}

// appendBind appends a simple BindRequest (LDAPv3).
func appendBind(b []byte, id int32, dn, password string) []byte {
	req := 3 + tlvSize(len(dn)) + tlvSize(len(password))
	return appendMessage(b, id, tlvSize(req), func(b []byte) []byte {
		b = appendHeader(b, tagBindRequest, req)
		b = appendInt(b, tagInteger, 3)
		b = appendString(b, tagOctetString, dn)
		return appendString(b, tagSimpleAuth, password)
	})
}

// appendStartTLS appends the StartTLS ExtendedRequest.
func appendStartTLS(b []byte, id int32) []byte {
	req := tlvSize(len(oidStartTLS))
	return appendMessage(b, id, tlvSize(req), func(b []byte) []byte {
		b = appendHeader(b, tagExtendedRequest, req)
		return appendString(b, tagExtendedName, oidStartTLS)
	})
}

// result is the part of an LDAP response a pipe needs.
type result struct {
	id     int32
	op     byte // the protocolOp tag
	code   int
	diag   string
	notice bool // an unsolicited notification (message id 0)
}

// err is nil for success, else an *ldap.Error with the result code and
// the server's message.
func (r result) err() error {
	if r.code == 0 {
		return nil
	}
	return ldap.NewError(uint16(r.code), errors.New(r.diag))
}

var errMalformed = errors.New("malformed LDAP response")

// readResult reads one LDAPMessage whose protocolOp is an LDAPResult.
// buf is reused between calls.
func readResult(r *bufio.Reader, buf *[]byte) (result, error) {
	tag, n, err := readHeader(r)
	if err != nil {
		return result{}, err
	}
	if tag != tagSequence || n > maxResponse {
		return result{}, fmt.Errorf("%w: message of tag %#x and %d bytes", errMalformed, tag, n)
	}
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	msg := (*buf)[:n]
	if _, err := io.ReadFull(r, msg); err != nil {
		return result{}, err
	}
	var res result
	tag, idBytes, rest, err := element(msg)
	if err != nil || tag != tagInteger {
		return result{}, errMalformed
	}
	id, ok := parseInt(idBytes)
	if !ok {
		return result{}, errMalformed
	}
	res.id, res.notice = int32(id), id == 0
	res.op, rest, _, err = element(rest)
	if err != nil {
		return result{}, errMalformed
	}
	tag, code, op, err := element(rest)
	if err != nil || tag != tagEnumerated {
		return result{}, errMalformed
	}
	if c, ok := parseInt(code); ok {
		res.code = int(c)
	} else {
		return result{}, errMalformed
	}
	if _, _, op, err = element(op); err != nil { // matchedDN
		return result{}, errMalformed
	}
	_, diag, _, err := element(op)
	if err != nil {
		return result{}, errMalformed
	}
	res.diag = string(diag)
	return res, nil
}

// readHeader reads the tag and length of an element.
func readHeader(r *bufio.Reader) (byte, int, error) {
	tag, err := r.ReadByte()
	if err != nil {
		return 0, 0, err
	}
	l, err := r.ReadByte()
	if err != nil {
		return 0, 0, err
	}
	if l < 0x80 {
		return tag, int(l), nil
	}
	k := int(l & 0x7f)
	if k == 0 || k > 4 {
		return 0, 0, fmt.Errorf("%w: length of %d bytes", errMalformed, k)
	}
	n := 0
	for range k {
		c, err := r.ReadByte()
		if err != nil {
			return 0, 0, err
		}
		n = n<<8 | int(c)
	}
	return tag, n, nil
}

// element splits b into its first element's tag and contents and what
// follows.
func element(b []byte) (tag byte, contents, rest []byte, err error) {
	if len(b) < 2 {
		return 0, nil, nil, errMalformed
	}
	tag, l, b := b[0], int(b[1]), b[2:]
	if l >= 0x80 {
		k := l & 0x7f
		if k == 0 || k > 4 || len(b) < k {
			return 0, nil, nil, errMalformed
		}
		l = 0
		for _, c := range b[:k] {
			l = l<<8 | int(c)
		}
		b = b[k:]
	}
	if l > len(b) {
		return 0, nil, nil, errMalformed
	}
	return tag, b[:l], b[l:], nil
}

// parseInt decodes a two's complement integer of at most 4 bytes.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 4 {
		return 0, false
	}
	v := int64(int8(b[0]))
	for _, c := range b[1:] {
		v = v<<8 | int64(c)
	}
	return v, true
}
