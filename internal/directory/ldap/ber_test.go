package ldap

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
)

// goLDAPAdd builds an AddRequest message the way go-ldap does, with the
// BER library it uses.
func goLDAPAdd(id int64, dn string, objectClasses []string, attrs attrList) []byte {
	msg := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Request")
	msg.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "MessageID"))
	req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, 8, nil, "Add Request")
	req.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, dn, "DN"))
	list := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Attributes")
	for _, a := range append(attrList{{name: "objectClass", values: objectClasses}}, attrs...) {
		seq := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Attribute")
		seq.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, a.name, "Type"))
		set := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "AttributeValue")
		for _, v := range a.values {
			set.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, v, "Vals"))
		}
		seq.AppendChild(set)
		list.AppendChild(seq)
	}
	req.AppendChild(list)
	msg.AppendChild(req)
	return msg.Bytes()
}

// TestAppendAddMatchesGoLDAP: the add requests a pipe encodes are byte
// for byte those go-ldap sends, for lengths at every boundary of the
// length encoding and message ids of every width.
func TestAppendAddMatchesGoLDAP(t *testing.T) {
	classes := []string{"inetOrgPerson", "top"}
	for _, id := range []int32{1, 127, 128, 255, 256, 32767, 32768, 1 << 23, 1<<31 - 1} {
		for _, n := range []int{0, 1, 50, 126, 127, 128, 200, 255, 256, 1000, 65535, 65536, 70000, 1 << 24} {
			attrs := attrList{
				{name: "cn", values: []string{strings.Repeat("c", n)}},
				{name: "mail", values: []string{"a@example.com", "Zoë Ünïcødé"}},
				{name: "description", values: []string{strings.Repeat("d", n/3), ""}},
			}
			dn := "uid=" + strings.Repeat("u", n%300) + ",ou=people,dc=example,dc=com"
			got := appendAdd([]byte("prefix"), id, dn, classes, attrs)
			if !bytes.HasPrefix(got, []byte("prefix")) {
				t.Fatalf("id %d, length %d: the buffer's bytes were overwritten", id, n)
			}
			if want := goLDAPAdd(int64(id), dn, classes, attrs); !bytes.Equal(got[6:], want) {
				t.Fatalf("id %d, length %d: encoding differs from go-ldap's (%d and %d bytes)", id, n, len(got)-6, len(want))
			}
			if id != 1 && n > 1000 {
				break // long values once are enough
			}
		}
	}
}

func TestAppendBindAndStartTLS(t *testing.T) {
	bind := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	bind.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(2), ""))
	req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, 0, nil, "")
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 3, ""))
	req.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "cn=admin,dc=example,dc=com", ""))
	req.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, "sécret", ""))
	bind.AppendChild(req)
	if got := appendBind(nil, 2, "cn=admin,dc=example,dc=com", "sécret"); !bytes.Equal(got, bind.Bytes()) {
		t.Errorf("bind request:\n got % x\nwant % x", got, bind.Bytes())
	}

	tls := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	tls.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(1), ""))
	ext := ber.Encode(ber.ClassApplication, ber.TypeConstructed, 23, nil, "")
	ext.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, oidStartTLS, ""))
	tls.AppendChild(ext)
	if got := appendStartTLS(nil, 1); !bytes.Equal(got, tls.Bytes()) {
		t.Errorf("StartTLS request:\n got % x\nwant % x", got, tls.Bytes())
	}
}

// response encodes an LDAPResult answer as a server would.
func response(id int64, op ber.Tag, code int64, diag string, referral bool) []byte {
	msg := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	msg.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, ""))
	res := ber.Encode(ber.ClassApplication, ber.TypeConstructed, op, nil, "")
	res.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, code, ""))
	res.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", ""))
	res.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, diag, ""))
	if referral {
		ref := ber.Encode(ber.ClassContext, ber.TypeConstructed, 3, nil, "")
		ref.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "ldap://elsewhere/", ""))
		res.AppendChild(ref)
	}
	msg.AppendChild(res)
	// Controls follow the operation; a reader must skip them.
	ctrls := ber.Encode(ber.ClassContext, ber.TypeConstructed, 0, nil, "")
	ctrls.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "1.2.3", ""))
	msg.AppendChild(ctrls)
	return msg.Bytes()
}

func TestReadResult(t *testing.T) {
	long := strings.Repeat("x", 70000)
	var stream bytes.Buffer
	stream.Write(response(3, 9, 0, "", false))
	stream.Write(response(200, 9, 68, "Already exists", false))
	stream.Write(response(70000, 9, 21, long, true))
	stream.Write(response(0, 24, 52, "server shutting down", false))
	r := bufio.NewReaderSize(&stream, 16)
	var buf []byte
	want := []result{
		{id: 3, op: tagAddResponse},
		{id: 200, op: tagAddResponse, code: 68, diag: "Already exists"},
		{id: 70000, op: tagAddResponse, code: 21, diag: long},
		{id: 0, op: tagExtendedResponse, code: 52, diag: "server shutting down", notice: true},
	}
	for i, w := range want {
		got, err := readResult(r, &buf)
		if err != nil || got != w {
			t.Fatalf("answer %d: %+v, %v; want %+v", i, got, err, w)
		}
	}
	if _, err := readResult(r, &buf); err != io.EOF {
		t.Errorf("after the last answer: %v, want EOF", err)
	}
}

func TestReadResultRefusesMalformedAnswers(t *testing.T) {
	ok := response(5, 9, 0, "fine", false)
	for name, b := range map[string][]byte{
		"not a sequence":       append([]byte{0x31}, ok[1:]...),
		"indefinite length":    {0x30, 0x80, 0x02, 0x01, 0x05, 0x00, 0x00},
		"length over 4 bytes":  {0x30, 0x85, 1, 0, 0, 0, 0},
		"over the size limit":  {0x30, 0x84, 0x10, 0, 0, 0},
		"id not an integer":    {0x30, 0x05, 0x04, 0x01, 0x05, 0x69, 0x00},
		"id of 5 bytes":        {0x30, 0x09, 0x02, 0x05, 1, 2, 3, 4, 5, 0x69, 0x00},
		"no result code":       {0x30, 0x05, 0x02, 0x01, 0x05, 0x69, 0x00},
		"no diagnostic":        {0x30, 0x0a, 0x02, 0x01, 0x05, 0x69, 0x05, 0x0a, 0x01, 0x00, 0x04, 0x00},
		"inner length too big": {0x30, 0x05, 0x02, 0x09, 0x05, 0x69, 0x00},
	} {
		_, err := readResult(bufio.NewReader(bytes.NewReader(b)), new([]byte))
		if !errors.Is(err, errMalformed) {
			t.Errorf("%s: %v, want a malformed-response error", name, err)
		}
	}
	_, err := readResult(bufio.NewReader(bytes.NewReader(ok[:len(ok)-3])), new([]byte))
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated answer: %v, want unexpected EOF", err)
	}
}

// FuzzReadResult: whatever a server sends, reading answers returns an
// answer or an error, and never panics or reads past the message.
func FuzzReadResult(f *testing.F) {
	f.Add(response(3, 9, 0, "", false))
	f.Add(response(70000, 9, 21, "diag", true))
	f.Add(append(response(1, 1, 49, "invalid credentials", false), response(0, 24, 52, "bye", false)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		var buf []byte
		for range 4 {
			if _, err := readResult(r, &buf); err != nil {
				return
			}
		}
	})
}
