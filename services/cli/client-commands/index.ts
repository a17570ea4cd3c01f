// Hooks the terminal client into the `agentd` program: its commands, and exit
// code 2 for every usage error commander finds (unknown flags, bad choices).
import type { Command, CommanderError } from "commander";

export { registerClientCommands } from "./commands.js";

const HELP_CODES = new Set(["commander.helpDisplayed", "commander.help", "commander.version"]);

export function applyCliConventions(program: Command): void {
  const onExit = (err: CommanderError) => {
    process.exit(HELP_CODES.has(err.code) ? 0 : 2);
  };
  const visit = (command: Command) => {
    command.exitOverride(onExit);
    for (const sub of command.commands) visit(sub);
  };
  visit(program);
}
