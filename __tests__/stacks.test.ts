/** State backends, the bootstrap stack, and escaping of literal values. */
import { testWithTools } from "./helpers/tools.js";
import { Testing } from "cdktf";
import { BootstrapStack } from "../constructs/bootstrap-stack.js";
import { literal } from "../lib/steps.js";
import { settings } from "./helpers/settings.js";
import { hclFor, resource, resources, staticResolved, synthStack } from "./helpers/stack.js";

const gcs = { type: "gcs", bucket: "test-project-tfstate", prefix: "nixos-gce" } as const;
const bootstrap = (s = settings()) => {
  const stack = new BootstrapStack(Testing.app(), "bootstrap", { settings: s });
  return { stack, json: Testing.synth(stack) };
};

describe("stacks and state", () => {
  testWithTools(["terraform"], "HCL snapshot of the bootstrap stack with a GCS backend", () => {
    const { stack } = bootstrap(settings({ backend: gcs }));
    expect(hclFor(stack)).toMatchSnapshot();
  });

  test("the bootstrap stack keeps local state and creates a versioned, private state bucket", () => {
    const { json } = bootstrap(settings({ backend: gcs }));
    expect(JSON.parse(json).terraform.backend).toEqual({ local: { path: "../../../terraform.bootstrap.tfstate" } });
    const bucket = resource(json, "google_storage_bucket", "StateBucket");
    expect(bucket).toMatchObject({
      name: "test-project-tfstate",
      versioning: { enabled: true },
      uniform_bucket_level_access: true,
      public_access_prevention: "enforced",
      lifecycle: { prevent_destroy: true, ignore_changes: ["location"] },
    });
    // Resource Manager serves project services and project IAM; sts and iamcredentials serve Workload Identity Federation.
    expect(Object.values(resources(json, "google_project_service")).map((s) => s.service)).toEqual(
      expect.arrayContaining(["iap.googleapis.com", "cloudresourcemanager.googleapis.com", "sts.googleapis.com", "iamcredentials.googleapis.com"]),
    );
  });

  test("the state bucket sits where the image bucket does: imageBucketLocation, else the region", () => {
    expect(resource(bootstrap(settings({ backend: gcs })).json, "google_storage_bucket", "StateBucket").location).toBe("EUROPE-WEST1");
    expect(resource(bootstrap(settings({ backend: gcs, imageBucketLocation: "eur4" })).json, "google_storage_bucket", "StateBucket").location).toBe("EUR4");
  });

  test("with local state there is no state bucket to create", () => {
    expect(resources(bootstrap().json, "google_storage_bucket")).toEqual({});
  });

  test("each stack keeps its state under its own prefix; local state stays out of cdktf.out", () => {
    const remote = settings({ backend: gcs });
    expect(JSON.parse(synthStack(remote, staticResolved(remote)).json).terraform.backend).toEqual({
      gcs: { bucket: "test-project-tfstate", prefix: "nixos-gce/infra" },
    });
    const local = settings();
    expect(JSON.parse(synthStack(local, staticResolved(local)).json).terraform.backend).toEqual({
      local: { path: "../../../terraform.infra.tfstate" },
    });
  });

  test("literal values are escaped so Terraform's templates pass them through", () => {
    expect(literal("path:/srv/${USER}/%{x}")).toBe("path:/srv/$${USER}/%%{x}");
    expect(literal(`a b;'"$(id)`)).toBe(`a b;'"$(id)`);
  });
});
