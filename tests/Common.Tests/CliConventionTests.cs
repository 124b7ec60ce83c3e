using System.CommandLine;
using ModelCar.Common.Cli;
using ModelCar.Common.Logging;

namespace ModelCar.Common.Tests;

public class CliConventionTests
{
    private static RootCommand Tool(Func<ToolContext, CancellationToken, Task<int>> action, Option<int>? required = null)
    {
        var root = ToolApp.CreateRoot("test tool");
        if (required is not null)
        {
            root.Options.Add(required);
        }
        root.SetToolAction("t", action);
        return root;
    }

    private static async Task<(int Code, string Out, string Err)> Run(RootCommand root, params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = await ToolApp.RunAsync("t", root, args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    [Fact]
    public async Task Unknown_option_is_usage_error_2()
    {
        var (code, _, err) = await Run(Tool((_, _) => Task.FromResult(0)), "--nope");
        Assert.Equal(2, code);
        Assert.Contains("t: error:", err);
    }

    [Fact]
    public async Task Missing_required_option_is_2()
    {
        var opt = new Option<int>("--count") { Required = true };
        var (code, _, err) = await Run(Tool((_, _) => Task.FromResult(0), opt));
        Assert.Equal(2, code);
        Assert.Contains("--count", err);
    }

    [Fact]
    public async Task Failure_is_one_redacted_line_and_exit_1()
    {
        Redactor.AddSecret("hunter2-password");
        var (code, _, err) = await Run(Tool((_, _) => throw new InvalidOperationException("login with hunter2-password failed")));
        Assert.Equal(1, code);
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.Equal("t: error: login with *** failed", lines[0].Trim());
    }

    [Fact]
    public async Task Verbose_adds_the_stack_trace()
    {
        var (code, _, err) = await Run(Tool((_, _) => throw new InvalidOperationException("boom")), "--verbose");
        Assert.Equal(1, code);
        Assert.Contains("at ", err);
    }

    [Fact]
    public async Task Usage_exception_from_action_is_2_and_result_goes_to_stdout()
    {
        var (code, _, _) = await Run(Tool((_, _) => throw new UsageException("bad combination")));
        Assert.Equal(2, code);
        var (ok, stdout, _) = await Run(Tool((ctx, _) => { ctx.WriteResult("sha256:x"); return Task.FromResult(0); }));
        Assert.Equal(0, ok);
        Assert.Equal("sha256:x", stdout.Trim());
    }
}

/// <summary>How the commands turn a library's typed failure into the exit code and the flag hint.</summary>
public class LibraryErrorMappingTests
{
    private enum TestReason { NeedsFlag }

    private sealed class LibraryFailure(string message, bool invalidInput = false, Exception? inner = null, Enum? reason = null)
        : ModelCarException(message, inner, reason: reason)
    {
        public override bool IsInvalidInput => invalidInput;
    }

    private static async Task<(int Code, string Err)> Run(Exception failure, params Func<Exception, string?>[] hints)
    {
        var root = ToolApp.CreateRoot("test tool");
        root.SetToolAction("t", (_, _) => throw failure, hints);
        var e = new StringWriter();
        int code = await ToolApp.RunAsync("t", root, [], new StringWriter(), e);
        return (code, e.ToString().Trim());
    }

    [Fact]
    public async Task A_library_failure_is_its_one_line_and_exit_1()
    {
        var (code, err) = await Run(new LibraryFailure("model directory '/m' does not exist", inner: new IOException("inner detail")));
        Assert.Equal(1, code);
        Assert.Equal("t: error: model directory '/m' does not exist", err);
    }

    [Fact]
    public async Task A_library_invalid_input_exits_2()
    {
        var (code, err) = await Run(new LibraryFailure("'a/b/c' is not a Hub repo id", invalidInput: true));
        Assert.Equal(2, code);
        Assert.Equal("t: error: 'a/b/c' is not a Hub repo id", err);
    }

    [Fact]
    public async Task The_command_adds_the_flag_hint_for_a_typed_reason_anywhere_in_the_chain_and_keeps_the_exit_code()
    {
        Func<Exception, string?> hint = e => Hints.For(e, TestReason.NeedsFlag, "set --the-flag");
        var typed = new LibraryFailure("the registry refuses a body this large", reason: TestReason.NeedsFlag);
        var (code, err) = await Run(new LibraryFailure("upload of blob x failed: the registry refuses a body this large", inner: typed), hint);
        Assert.Equal(1, code);
        Assert.Equal("t: error: upload of blob x failed: the registry refuses a body this large; set --the-flag", err);

        (code, err) = await Run(new LibraryFailure("bad value", invalidInput: true, reason: TestReason.NeedsFlag), hint);
        Assert.Equal(2, code);
        Assert.Equal("t: error: bad value; set --the-flag", err);

        // no typed reason: no hint
        (code, err) = await Run(new LibraryFailure("something else"), hint);
        Assert.Equal(1, code);
        Assert.Equal("t: error: something else", err);
    }
}
