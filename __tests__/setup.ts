/** cdktf's jest matchers (toHaveResourceWithProperties, …), for the JSON from Testing.synth. */
import { Testing } from "cdktf";
import "cdktf/lib/testing/adapters/jest.js";

Testing.setupJest();
