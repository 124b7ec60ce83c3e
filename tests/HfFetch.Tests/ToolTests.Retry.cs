using System.Text.RegularExpressions;

namespace ModelCar.HfFetch.Tests;

/// <summary>hf-fetch's body-transfer retries go through the one retry policy (count, delay, log line).</summary>
public sealed partial class ToolTests
{
    [Fact]
    public async Task A_cut_body_is_continued_under_the_one_retry_policy_with_its_log_line()
    {
        var repo = StandardRepo();
        var tokenizer = repo.Files[3];
        _hub.CutAfter = (path, nth) => nth == 1 && path == tokenizer.Path ? 20_000 : null;
        var r = await RunAsync(Args(repo.Id, "--chunk-size", "1M", "--retries", "3"));
        Assert.True(r.ExitCode == 0, r.ToString());
        AssertSnapshot(repo);
        Assert.Contains(_hub.Requests, q => q.Range == "bytes=20000-69999");
        // the same line the Polly pipeline writes ("retry N/MAX in D s after WHY"), with the file and what happens next
        Assert.Matches(new Regex(@"sub/deeper/tokenizer\.json: retry 1/3 in \d+\.\d s after transfer broke at byte 20000 \(.+\); continuing with Range"), r.StdErr);
    }
}
