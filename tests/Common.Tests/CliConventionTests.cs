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
