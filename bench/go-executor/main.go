// A minimal sleep executor written with the Colonies Go SDK: the baseline a user would otherwise write.
// It registers itself, serves BENCH_COUNT processes one at a time, removes itself and prints the elapsed time
// (from the first assignment to the last close) in milliseconds.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/colonyos/colonies/pkg/client"
	"github.com/colonyos/colonies/pkg/core"
	"github.com/colonyos/colonies/pkg/security/crypto"
)

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func main() {
	port, err := strconv.Atoi(os.Getenv("COLONIES_SERVER_PORT"))
	must(err)
	count, err := strconv.Atoi(os.Getenv("BENCH_COUNT"))
	must(err)
	colony := os.Getenv("COLONIES_COLONY_NAME")
	colonyKey := os.Getenv("COLONIES_COLONY_PRVKEY")
	name := os.Getenv("COLONIES_EXECUTOR_NAME")

	c := client.CreateColoniesClient(os.Getenv("COLONIES_SERVER_HOST"), port, true, false)
	cr := crypto.CreateCrypto()
	key, err := cr.GeneratePrivateKey()
	must(err)
	id, err := cr.GenerateID(key)
	must(err)
	_, err = c.AddExecutor(core.CreateExecutor(id, os.Getenv("COLONIES_EXECUTOR_TYPE"), name, colony, time.Now(), time.Now()), colonyKey)
	must(err)
	must(c.ApproveExecutor(colony, name, colonyKey))
	fmt.Println("ready")

	var started time.Time
	for done := 0; done < count; {
		process, err := c.Assign(colony, 10, "", "", key)
		if err != nil {
			continue
		}
		if done == 0 {
			started = time.Now()
		}
		ms, _ := strconv.Atoi(fmt.Sprint(process.FunctionSpec.Args[0]))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		must(c.CloseWithOutput(process.ID, []interface{}{map[string]int{"milliseconds": ms}}, key))
		done++
	}
	fmt.Printf("elapsed_ms %d\n", time.Since(started).Milliseconds())
	must(c.RemoveExecutor(colony, name, colonyKey))
}
