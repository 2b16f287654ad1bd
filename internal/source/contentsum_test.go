package source

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// Two readers of one file, with buffers of different sizes, one of
// which stops early: the sum is the file's once the other has read to
// the end, though neither chunk starts at the frontier.
func TestContentSumOfReadersThatNeverMeetTheFrontierExactly(t *testing.T) {
	data := make([]byte, 10000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	c := &contentSum{h: sha256.New(), size: int64(len(data))}
	c.add(0, data[:3000]) // the first reader stops here
	for at := 0; at < len(data); at += 4096 {
		c.add(int64(at), data[at:min(at+4096, len(data))])
	}
	want := sha256.Sum256(data)
	if got := c.hex(); got != hex.EncodeToString(want[:]) {
		t.Fatalf("sum %q, want the file's", got)
	}
}
