#!/usr/bin/env node
// The perceiver command line: one subcommand per file in scripts/cli/.
// Exit status: 0 on success, 2 for a bad invocation (flags), 1 when the work fails
// (missing or bad files, inputs the model does not take, engine errors).
import { UsageError, type Command } from './cli/command.js';
import { runCommand } from './cli/run.js';
import { infoCommand } from './cli/info.js';
import { convertCommand } from './cli/convert.js';
import { fillMaskCommand } from './cli/fill-mask.js';
import { classifyCommand } from './cli/classify.js';
import { flowCommand } from './cli/flow.js';
import { trainCommand } from './cli/train.js';

const COMMANDS: Command[] = [runCommand, infoCommand, convertCommand, fillMaskCommand, classifyCommand, flowCommand, trainCommand];

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return `Usage: perceiver <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nRun 'perceiver <command> --help' for a command's options.\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '-h' || name === '--help' || name === 'help') {
    const target = name === 'help' ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    if (name === 'help' && rest[0] !== undefined && !target) {
      process.stderr.write(`perceiver: error: unknown command '${rest[0]}' (commands: ${COMMANDS.map((c) => c.name).join(', ')})\n\n${overview()}`);
      return 2;
    }
    process.stdout.write(target ? target.usage : overview());
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  try {
    if (name === undefined) throw new UsageError('no command given');
    if (!command) throw new UsageError(`unknown command '${name}' (commands: ${COMMANDS.map((c) => c.name).join(', ')})`);
    // After '--' everything is an argument: `fill-mask -- --help` fills the text '--help'.
    const end = rest.indexOf('--');
    const options = end < 0 ? rest : rest.slice(0, end);
    if (options.includes('-h') || options.includes('--help')) {
      process.stdout.write(command.usage);
      return 0;
    }
    return (await command.run(rest)) ?? 0;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`perceiver: error: ${err.message}\n\n${command ? command.usage : overview()}`);
      return 2;
    }
    process.stderr.write(`perceiver: error: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
