package dev.gmem.examples.cli;

import dev.gmem.api.GmemException;
import java.util.Map;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** The {@code gmem} command. */
@Command(
    name = "gmem",
    mixinStandardHelpOptions = true,
    versionProvider = GmemTool.Version.class,
    description = "guest_memfd for user-space VMMs, on the real kernel.",
    subcommands = {InfoCommand.class, DemoCommand.class, BenchCommand.class, SnapshotCommand.class, RestoreCommand.class, MigrateCommand.class, CommandLine.HelpCommand.class})
public final class GmemTool implements Runnable {

  @CommandLine.Spec
  CommandLine.Model.CommandSpec spec;

  /**
   * {@code gmem -Dkey=value <command>}: a system property, as {@code java -D} sets it, so it is seen
   * by every runtime the command builds (gmem.* properties) and by the logger
   * ({@code org.slf4j.simpleLogger.*}). After the command name, {@code -D} sets a builder property
   * of that command's runtime instead.
   */
  @Option(names = "-D", paramLabel = "KEY=VALUE", description = "set a system property, e.g. -Dgmem.backend=memfd")
  void systemProperties(Map<String, String> properties) {
    properties.forEach(System::setProperty);
  }

  @Override
  public void run() {
    spec.commandLine().usage(spec.commandLine().getOut());
  }

  public static void main(String[] args) {
    System.exit(commandLine().execute(args));
  }

  /**
   * The command line with its handlers: a {@link GmemException} (a refused configuration, an errno
   * from the kernel) is a message for the user, not a stack trace.
   */
  static CommandLine commandLine() {
    CommandLine cl = new CommandLine(new GmemTool());
    cl.setExecutionExceptionHandler((e, commandLine, parseResult) -> {
      if (!(e instanceof GmemException)) {
        throw e;
      }
      commandLine.getErr().println("gmem " + commandLine.getCommandName() + ": " + e.getMessage());
      return 1;
    });
    return cl;
  }

  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
      String v = GmemTool.class.getPackage().getImplementationVersion();
      if (v == null && GmemTool.class.getModule().getDescriptor() != null) {
        v = GmemTool.class.getModule().getDescriptor().rawVersion().orElse(null); // on the module path
      }
      return new String[] {"gmem " + (v == null ? "(development build)" : v)};
    }
  }
}
