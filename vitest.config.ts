import { defineConfig } from "vitest/config";

// Two projects: fast unit tests (fakes of one interface at most) and integration tests against real peers
// (Colonies server, PostgreSQL, Pulumi, Kubernetes API, S3). Integration files run one at a time: they share
// two cores with the peers they start.
export default defineConfig({
  test: {
    projects: [
      { test: { name: "unit", include: ["test/unit/**/*.test.ts"] } },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
