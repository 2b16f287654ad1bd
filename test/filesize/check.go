// Package filesize keeps the codebase's files small enough to read whole:
// no Go file written by hand is over MaxLines lines.
package filesize

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// MaxLines is the most lines a Go file written by hand may have. A file
// that grows past it is split by concern.
const MaxLines = 700

// generated is the line that marks a generated Go file (go help generate).
var generated = regexp.MustCompile(`^// Code generated .* DO NOT EDIT\.$`)

// Over lists the Go files under root, generated ones aside, that have more
// than max lines, each as "path: N lines". Directories whose names start
// with "." and bin/ are not searched.
func Over(root string, max int) ([]string, error) {
	var long []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if isGenerated(data) {
			return nil
		}
		n := bytes.Count(data, []byte("\n"))
		if len(data) > 0 && data[len(data)-1] != '\n' {
			n++
		}
		if n > max {
			rel, _ := filepath.Rel(root, path)
			long = append(long, fmt.Sprintf("%s: %d lines", rel, n))
		}
		return nil
	})
	return long, err
}

// isGenerated tells whether a line before the package clause marks the
// file as generated.
func isGenerated(data []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "package ") {
			return false
		}
		if generated.MatchString(line) {
			return true
		}
	}
	return false
}
