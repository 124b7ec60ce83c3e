using System.CommandLine;
using System.Net.Http;
using System.Security.Authentication;
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

    /// <summary>Binds an action that gets a <see cref="ToolContext"/>; exceptions become exit codes.</summary>
    public static void SetToolAction(this Command command, string toolName, Func<ToolContext, CancellationToken, Task<int>> action)
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

    private static int Report(string toolName, Exception ex, bool verbose, TextWriter stderr, CancellationToken ct)
    {
        int code = ex switch
        {
            ToolException te => te.ExitCode,
            _ => ExitCodes.Failure,
        };
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

    /// <summary>One line naming the cause: the message chain of the exception, deduplicated.</summary>
    public static string Describe(Exception ex)
    {
        if (ex is ToolException)
        {
            return OneLine(ex.Message);
        }
        var parts = new List<string>();
        for (Exception? e = ex; e is not null; e = e.InnerException)
        {
            string m = e switch
            {
                UnauthorizedAccessException => e.Message,
                AuthenticationException => "TLS: " + e.Message,
                _ => e.Message,
            };
            m = OneLine(m);
            if (m.Length > 0 && !parts.Any(p => p.Contains(m, StringComparison.Ordinal)))
            {
                parts.Add(m);
            }
            if (e is HttpRequestException { HttpRequestError: not HttpRequestError.Unknown } hre && parts.Count == 1)
            {
                parts[0] = $"{parts[0]} ({hre.HttpRequestError})";
            }
        }
        return string.Join(": ", parts);
    }

    private static string OneLine(string s) => s.ReplaceLineEndings(" ").Trim();
}
