package worker

import "encoding/json"

// mergePatchOfData is a JSON merge patch that replaces the given keys of a
// Secret's data.
func mergePatchOfData(data map[string][]byte) ([]byte, error) {
	return json.Marshal(map[string]any{"data": data})
}
