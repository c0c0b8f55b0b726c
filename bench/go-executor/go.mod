module colonyos-executors/bench/go-executor

go 1.25

require github.com/colonyos/colonies v1.9.12
