// A key management service speaking AWS KMS's API on a loopback address, for tests of the k8s executor's
// key-manager secrets provider (K8S_PULUMI_SECRETS_PROVIDER=awskms://...): local-kms's request handling,
// listening where LOCAL_KMS_ADDRESS says (local-kms's own main listens on every interface, on a fixed port).
// Keys are created through the API (CreateKey); they live in LOCAL_KMS_DATA_PATH.
// Prints "listening on HOST:PORT" once it accepts connections.
package main

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/nsmithuk/local-kms/src"
	"github.com/nsmithuk/local-kms/src/config"
	"github.com/nsmithuk/local-kms/src/data"
)

func main() {
	address := getenv("LOCAL_KMS_ADDRESS", "127.0.0.1:0")
	config.AWSRegion = getenv("LOCAL_KMS_REGION", "us-east-1")
	config.AWSAccountId = getenv("LOCAL_KMS_ACCOUNT_ID", "111122223333")
	config.DatabasePath = getenv("LOCAL_KMS_DATA_PATH", "/tmp/local-kms")

	database := data.NewDatabase(config.DatabasePath)
	defer database.Close()
	listener, err := net.Listen("tcp", address)
	if err != nil {
		log.Fatalf("listen on %s: %v", address, err)
	}
	fmt.Printf("listening on %s\n", listener.Addr())
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		src.HandleRequest(w, r, database)
	})
	log.Fatal(http.Serve(listener, handler))
}

func getenv(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}
