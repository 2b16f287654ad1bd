package main

import "errors"

func runWorker(args []string) error {
	return errors.New("worker: not available in this build yet")
}
