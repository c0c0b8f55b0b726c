// Command pulumi-language-nodejs hands the project's runtime options to the real language host as flags.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"gopkg.in/yaml.v3"
)

// The flags the host defines for runtime options; any other option would make its flag parsing fail.
var known = map[string]bool{"typescript": true, "nodeargs": true, "tsconfig": true}

func projectFile(dir string) string {
	for {
		for _, name := range []string{"Pulumi.yaml", "Pulumi.yml"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				return filepath.Join(dir, name)
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func optionFlags() []string {
	wd, err := os.Getwd()
	if err != nil {
		return nil
	}
	path := projectFile(wd)
	if path == "" {
		return nil
	}
	flags := []string{"-root=" + filepath.Dir(path)}
	raw, err := os.ReadFile(path)
	if err != nil {
		return flags
	}
	var project struct {
		Runtime yaml.Node `yaml:"runtime"`
	}
	if yaml.Unmarshal(raw, &project) != nil || project.Runtime.Kind != yaml.MappingNode {
		return flags
	}
	var runtime struct {
		Options map[string]interface{} `yaml:"options"`
	}
	if project.Runtime.Decode(&runtime) != nil {
		return flags
	}
	keys := make([]string, 0, len(runtime.Options))
	for k := range runtime.Options {
		if known[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		flags = append(flags, fmt.Sprintf("-%s=%v", k, runtime.Options[k]))
	}
	return flags
}

func main() {
	self, err := os.Executable()
	if err == nil {
		self, err = filepath.EvalSymlinks(self)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pulumi-language-nodejs:", err)
		os.Exit(1)
	}
	host := filepath.Join(filepath.Dir(filepath.Dir(self)), "libexec", "pulumi-language-nodejs")
	args := append(append([]string{host}, optionFlags()...), os.Args[1:]...)
	err = syscall.Exec(host, args, os.Environ())
	fmt.Fprintln(os.Stderr, "pulumi-language-nodejs: cannot run", host+":", err)
	os.Exit(1)
}
