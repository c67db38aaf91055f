package dev.gmem.examples.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code gmem} command. */
@Command(
    name = "gmem",
    mixinStandardHelpOptions = true,
    versionProvider = GmemTool.Version.class,
    description = "guest_memfd for user-space VMMs, on the real kernel.",
    subcommands = {InfoCommand.class, DemoCommand.class, BenchCommand.class, CommandLine.HelpCommand.class})
public final class GmemTool implements Runnable {

  @CommandLine.Spec
  CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    spec.commandLine().usage(spec.commandLine().getOut());
  }

  public static void main(String[] args) {
    System.exit(new CommandLine(new GmemTool()).execute(args));
  }

  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
      String v = GmemTool.class.getPackage().getImplementationVersion();
      return new String[] {"gmem " + (v == null ? "(development build)" : v)};
    }
  }
}
