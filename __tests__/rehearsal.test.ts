/**
 * The rehearsal: the synthesized infra stack applied by real Terraform core
 * (Google resources as terraform_data stand-ins, lib/rehearse.ts), with real
 * Nix builds of the fixture flake, the steps' real scripts, and test doubles
 * for gcloud storage, ssh and deploy-rs. Each scenario asserts what ran and
 * what did not.
 */
import { describeWithNix, nixSkipReason } from "./helpers/nix.js";
import { rehearsalProject, type RehearsalProject, TERRAFORM, terraformSkipReason } from "./helpers/rehearsal.js";
import { baseSettings } from "./helpers/settings.js";

const describeRehearsal: jest.Describe = TERRAFORM ? describeWithNix : (describe.skip as jest.Describe);

describeRehearsal(`rehearsal with real Terraform and Nix${nixSkipReason}${terraformSkipReason}`, () => {
  let project: RehearsalProject;
  afterEach(() => project?.cleanup());

  test("a. first deploy: build, upload, image, VM, deploy, in order", async () => {
    project = await rehearsalProject(baseSettings({ hosts: { vm: { nixosConfiguration: "vm", image: "base", machineType: "e2-small" } } }));
    await project.synth();
    const { run, summary } = await project.apply();
    console.log(run.text, summary);
    expect(run.exitCode).toBe(0);
  }, 180000);
});
