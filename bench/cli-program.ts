/**
 * The k8s executor's deployment program as a plain Pulumi project program, for the bare `pulumi up` baseline of
 * bench/k8s-replicas.bench.ts: the same spec and identity (BENCH_PROGRAM, JSON) and the same configuration (the
 * executor's K8S_* environment), so that the CLI updates exactly what the executor would.
 */
import { loadK8sConfig } from "../src/executors/k8s/config.js";
import { deploymentProgram } from "../src/executors/k8s/spec.js";

const { spec, identity } = JSON.parse(process.env.BENCH_PROGRAM ?? "{}");
export default deploymentProgram(spec, loadK8sConfig(process.env), identity);
