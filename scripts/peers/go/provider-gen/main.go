// Command gen writes schema-embed.json (schema.json with "version" set) and terraform-mapping-embed.json
// (and helm-mapping-embed.json when the provider has one) from the provider module's cmd/pulumi-resource-kubernetes.
package main

import (
	"encoding/json"
	"log"
	"os"
	"path/filepath"
)

func compact(src, dst string, edit func(map[string]json.RawMessage)) {
	raw, err := os.ReadFile(src)
	if err != nil {
		log.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		log.Fatalf("%s: %v", src, err)
	}
	if edit != nil {
		edit(doc)
	}
	out, err := json.Marshal(doc)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(dst, out, 0o644); err != nil {
		log.Fatal(err)
	}
}

func main() {
	dir, version := os.Args[1], os.Args[2]
	compact(filepath.Join(dir, "schema.json"), "schema-embed.json", func(doc map[string]json.RawMessage) {
		v, _ := json.Marshal(version)
		doc["version"] = v
	})
	compact(filepath.Join(dir, "terraform-mapping.json"), "terraform-mapping-embed.json", nil)
	if _, err := os.Stat(filepath.Join(dir, "helm-mapping.json")); err == nil {
		compact(filepath.Join(dir, "helm-mapping.json"), "helm-mapping-embed.json", nil)
	}
}
