import { describe, expect, it } from "vitest";
import {
  validateDeploymentName,
  validateImage,
  validatePodName,
  validateQuantity,
} from "../../src/k8s/validation.js";

describe("deployment names", () => {
  it.each(["web", "a", "sleep-2", "x".repeat(46), "0abc"])("accepts %s", (name) => {
    expect(validateDeploymentName("deploy", name)).toBe(name);
  });
  it.each([
    ["Web", /lower-case/],
    ["-web", /starting and ending/],
    ["web-", /starting and ending/],
    ["we_b", /lower-case/],
    ["we.b", /lower-case/],
    ["", /lower-case/],
    ["x".repeat(47), /47 characters; at most 46/],
  ])("rejects %j", (name, message) => {
    expect(() => validateDeploymentName("deploy", name)).toThrow(message);
  });
});

describe("image references", () => {
  it.each([
    "busybox",
    "busybox:1.36",
    "library/busybox:latest",
    "registry.example.com:5000/team/executor:1.2.3",
    "ghcr.io/colonyos/executors@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "localhost/executor:dev_1",
  ])("accepts %s", (image) => {
    expect(validateImage("deploy", image)).toBe(image);
  });
  it.each([
    "",
    "Busybox",
    "busybox:",
    "busy box",
    "busybox:tag with space",
    "-busybox",
    "a//b",
    "busybox@sha256:xyz",
    ":tag",
  ])("rejects %j", (image) => {
    expect(() => validateImage("deploy", image)).toThrow(/not a valid image reference/);
  });
});

describe("pod names and quantities", () => {
  it("checks pod names", () => {
    expect(validatePodName("restart", "web-5d9c7b8f6d-x2x9z")).toBe("web-5d9c7b8f6d-x2x9z");
    expect(() => validatePodName("restart", "Web_1")).toThrow('restart: "Web_1" is not a valid pod name');
  });
  it("checks quantities", () => {
    for (const q of ["250m", "1", "0.5", "512Mi", "2Gi", "1e3"]) expect(validateQuantity("cpu", q)).toBe(q);
    for (const q of ["", "lots", "1GB", "-1"])
      expect(() => validateQuantity("cpu", q)).toThrow(/not a Kubernetes quantity/);
  });
});
