import { StackNotFoundError } from "@pulumi/pulumi/automation/index.js";
import { describe, expect, it } from "vitest";
import { redactSecrets, redactText, secretValues } from "../../src/executor/redact.js";
import { redactCommandError } from "../../src/k8s/redacted-cli.js";

describe("redactText", () => {
  it("masks the password of any URL, keeping the user and the host", () => {
    expect(
      redactText(
        'error: unable to open state database "postgres://pulumi:s3cr%2Bt@127.0.0.1:5432/state?sslmode=disable": x',
      ),
    ).toBe(
      'error: unable to open state database "postgres://pulumi:[redacted]@127.0.0.1:5432/state?sslmode=disable": x',
    );
    expect(redactText("s3://bucket?endpoint=http://127.0.0.1:9000 and https://u:p@h/x")).toBe(
      "s3://bucket?endpoint=http://127.0.0.1:9000 and https://u:[redacted]@h/x",
    );
  });

  it("leaves URLs without a password and ordinary text alone", () => {
    const text = "postgres://pulumi@db:5432/state, http://127.0.0.1:9/ (connection refused), a:b@c";
    expect(redactText(text)).toBe(text);
  });

  it("masks known secrets wherever they appear, also URL-encoded, but not short ones", () => {
    expect(
      redactText("pass=correct horse/battery; enc=correct%20horse%2Fbattery; ab", [
        "correct horse/battery",
        "ab",
      ]),
    ).toBe("pass=[redacted]; enc=[redacted]; ab");
  });

  it("finds the secrets among environment variables by name", () => {
    expect(
      secretValues({ AWS_SECRET_ACCESS_KEY: "k1", VAULT_TOKEN: "t1", AWS_REGION: "eu", EMPTY_SECRET: "" }),
    ).toEqual(["k1", "t1"]);
  });
});

describe("redactSecrets (log records)", () => {
  it("masks URL passwords in strings and in errors, which become plain objects", () => {
    const error = new Error('open "postgres://u:hunter22@h/db" failed');
    const record = redactSecrets({ msg: "x", url: "postgres://u:hunter22@h/db", err: error }) as Record<
      string,
      Record<string, unknown>
    >;
    expect(JSON.stringify(record)).not.toContain("hunter22");
    expect(record.err?.message).toBe('open "postgres://u:[redacted]@h/db" failed');
    expect(record.err?.type).toBe("Error");
  });
});

describe("redactCommandError", () => {
  const result = (stderr: string) => ({
    stdout: "",
    stderr,
    code: -2,
    err: new Error(stderr),
    toString: () => `code: -2\n stdout: \n stderr: ${stderr}\n err?: Error: ${stderr}\n`,
  });

  it("masks the CLI's text and drops its raw error, keeping the error's class", () => {
    const stderr =
      'error: unable to open state database "postgres://u:hunter22@h/db": refused (key hunter22x)';
    // @ts-expect-error: the SDK marks the constructor internal
    const error = redactCommandError(new StackNotFoundError(result(stderr)), [
      "hunter22x",
    ]) as StackNotFoundError;
    expect(error).toBeInstanceOf(StackNotFoundError);
    const { commandResult } = error as unknown as { commandResult: { stderr: string; err: unknown } };
    expect(commandResult.err).toBeUndefined();
    for (const text of [error.message, error.stack, commandResult.stderr]) {
      expect(text).toContain("postgres://u:[redacted]@h/db");
      expect(text).not.toContain("hunter22");
    }
  });

  it("returns other errors as they are", () => {
    const other = new Error("postgres://u:hunter22@h/db");
    expect(redactCommandError(other, [])).toBe(other);
    expect(other.message).toContain("hunter22");
  });
});
