using System.CommandLine;
using ModelCar.Common.Logging;

namespace ModelCar.Common.Cli;

/// <summary>
/// Runs a tool's root command with the shared conventions: parse errors exit 2, failures exit 1 with
/// one redacted line on stderr (stack trace only with --verbose), Ctrl-C cancels cleanly.
/// </summary>
public static class ToolApp
{
    /// <summary>Creates a root command that already carries the global options.</summary>
    public static RootCommand CreateRoot(string description)
    {
        var root = new RootCommand(description);
        GlobalOptions.AddTo(root);
        return root;
    }

    /// <summary>
    /// Binds an action that gets a <see cref="ToolContext"/>; exceptions become exit codes. Each of
    /// <paramref name="hints"/> looks at a failure (its typed causes: <see cref="ModelCarException.Reason"/>,
    /// the exception types) and returns which option to change, or null; the hints are added to the
    /// one error line. Libraries never name options: this is where the command does.
    /// </summary>
    public static void SetToolAction(this Command command, string toolName, Func<ToolContext, CancellationToken, Task<int>> action,
        params Func<Exception, string?>[] hints) => command.SetToolAction(toolName, hints, action);

    /// <summary>As above, the hints first (so the action lambda can stay the last argument).</summary>
    public static void SetToolAction(this Command command, string toolName, IReadOnlyList<Func<Exception, string?>> hints,
        Func<ToolContext, CancellationToken, Task<int>> action)
    {
        command.SetAction(async (parseResult, ct) =>
        {
            var stdout = parseResult.InvocationConfiguration.Output;
            var stderr = parseResult.InvocationConfiguration.Error;
            var context = new ToolContext(toolName, parseResult, stdout, stderr);
            Exception? failure = null;
            int code = ExitCodes.Ok;
            try
            {
                code = await action(context, ct).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                failure = ex;
            }
            finally
            {
                context.Dispose(); // flushes queued log lines before the error line
            }
            if (ModelCarException.Find<Http.RetryWaitTooLongException>(failure) is { } tooLong && parseResult.CommandResult.Command.Options.Any(o => o.Name == CommonOptions.MaxRetryWaitName))
            {
                // the library says what the server asked for; the command adds which option changes the limit
                failure = new ToolException($"{tooLong.Message} (raise {CommonOptions.MaxRetryWaitName} to wait that long)", failure);
            }
            else if (failure is not null && !(failure is OperationCanceledException && ct.IsCancellationRequested))
            {
                failure = WithHints(failure, [.. hints]);
            }
            return failure is null ? code : Report(toolName, failure, context.Verbose, stderr, ct);
        });
    }

    /// <summary>Parses and runs. Returns the exit code: 0 ok, 1 failure, 2 bad usage.</summary>
    public static async Task<int> RunAsync(string toolName, RootCommand root, string[] args, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        stdout ??= Console.Out;
        stderr ??= Console.Error;
        ProcessEnvironment.EnsureHome();
        ParseResult parseResult = root.Parse(args);
        if (parseResult.Errors.Count > 0)
        {
            foreach (var error in parseResult.Errors)
            {
                stderr.WriteLine($"{toolName}: error: {Redactor.Redact(error.Message)}");
            }
            stderr.WriteLine($"Try '{toolName} --help' for more information.");
            return ExitCodes.Usage;
        }

        var config = new InvocationConfiguration
        {
            Output = stdout,
            Error = stderr,
            EnableDefaultExceptionHandler = false,
        };
        try
        {
            return await parseResult.InvokeAsync(config).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            return Report(toolName, ex, parseResult.GetValue(GlobalOptions.Verbose), stderr, CancellationToken.None);
        }
        finally
        {
            stdout.Flush();
            stderr.Flush();
        }
    }

    /// <summary>
    /// The failure with the hints that apply added to its one line ("…; HINT"), keeping its exit
    /// code; the failure itself when none applies.
    /// </summary>
    public static Exception WithHints(Exception failure, params Func<Exception, string?>[] hints)
    {
        var found = hints.Select(h => h(failure)).OfType<string>().Where(h => h.Length > 0).Distinct().ToList();
        if (found.Count == 0)
        {
            return failure;
        }
        return new ToolException($"{Describe(failure)}; {string.Join("; ", found)}", failure, ExitCodeOf(failure));
    }

    /// <summary>1 for a failure, 2 for bad input (a <see cref="UsageException"/> or a library's invalid-input exception).</summary>
    public static int ExitCodeOf(Exception ex) => ex switch
    {
        ToolException te => te.ExitCode,
        ModelCarException { IsInvalidInput: true } => ExitCodes.Usage,
        _ => ExitCodes.Failure,
    };

    private static int Report(string toolName, Exception ex, bool verbose, TextWriter stderr, CancellationToken ct)
    {
        int code = ExitCodeOf(ex);
        string message = ex is OperationCanceledException && ct.IsCancellationRequested
            ? "cancelled"
            : Describe(ex);
        stderr.WriteLine($"{toolName}: error: {Redactor.Redact(message)}");
        if (verbose)
        {
            stderr.WriteLine(Redactor.Redact(ex.ToString()));
        }
        return code;
    }

    /// <summary>One line naming the cause (<see cref="ErrorText.Describe"/>).</summary>
    public static string Describe(Exception ex) => ErrorText.Describe(ex);
}
