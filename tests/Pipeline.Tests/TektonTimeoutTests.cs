using YamlDotNet.RepresentationModel;

namespace ModelCar.Pipeline.Tests;

/// <summary>
/// The engine's model of Tekton's timeouts (issue 21 item 15): durations parse as Go's, a pipeline
/// task's `timeout` cannot be a $(params…) reference, the run's `timeouts` are validated as the
/// webhook does, each try gets the TaskRun timeout Tekton gives it (pre-v1.11: never timeouts.tasks)
/// and a try over it fails and is retried, and timeouts.tasks elapsing fails the run.
/// </summary>
public class TektonTimeoutTests
{
    private static YamlMappingNode Yaml(string text)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(text));
        return (YamlMappingNode)stream.Documents.Single().RootNode;
    }

    [Theory]
    [InlineData("4h", 4 * 60)]
    [InlineData("2h0m0s", 2 * 60)]
    [InlineData("1h30m", 90)]
    [InlineData("90m", 90)]
    [InlineData("1.5h", 90)]
    [InlineData("0", 0)]
    public void Durations_parse_as_go_time_ParseDuration(string text, int minutes)
    {
        Assert.Equal(TimeSpan.FromMinutes(minutes), TektonEngine.ParseDuration(text, "t"));
    }

    [Theory]
    [InlineData("4")]
    [InlineData("-1h")]
    [InlineData("4 h")]
    [InlineData("4hours")]
    [InlineData("")]
    [InlineData("$(params.task-timeout)")]
    public void Non_durations_are_refused(string text)
    {
        var e = Assert.Throws<PipelineRunFailed>(() => TektonEngine.ParseDuration(text, "t"));
        Assert.Contains($"'{text}'", e.Message);
    }

    /// <summary>
    /// PipelineTask.Timeout is a *metav1.Duration (tektoncd/pipeline pkg/apis/pipeline/v1/pipeline_types.go):
    /// the API server decodes it with time.ParseDuration, so "$(params.task-timeout)" is refused before
    /// any substitution could happen. The engine refuses it the same way.
    /// </summary>
    [Fact]
    public void A_pipeline_task_timeout_from_a_param_is_refused_as_tekton_decodes_a_duration()
    {
        const string pipeline = """
            apiVersion: tekton.dev/v1
            kind: Pipeline
            metadata: {name: p}
            spec:
              params: [{name: task-timeout, type: string, default: 4h}]
              tasks:
                - name: download
                  timeout: $(params.task-timeout)
                  taskRef: {name: hf-fetch}
            """;
        var e = Assert.Throws<PipelineRunFailed>(() => TektonEngine.LoadPipeline(Yaml(pipeline)));
        Assert.Contains("metav1.Duration", e.Message);
        var ok = TektonEngine.LoadPipeline(Yaml(pipeline.Replace("$(params.task-timeout)", "3h0m0s")));
        Assert.Equal(TimeSpan.FromHours(3), ok.Tasks.Single().Timeout);
    }

    [Theory]
    [InlineData("{pipeline: 1h, tasks: 2h}", "timeouts.tasks")]
    [InlineData("{tasks: 2h}", "timeouts.tasks")] // against the 60-minute default pipeline timeout
    [InlineData("{pipeline: 1h, finally: 2h}", "timeouts.finally")]
    [InlineData("{pipeline: 1h, tasks: 40m, finally: 30m}", "tasks + timeouts.finally")]
    [InlineData("{pipeline: 1h, task: 30m}", "not a Tekton timeouts field")]
    public void Run_timeouts_are_validated_as_the_webhook_does(string timeouts, string message)
    {
        var run = $"""
            apiVersion: tekton.dev/v1
            kind: PipelineRun
            metadata: {"{"}generateName: r-{"}"}
            spec:
              pipelineRef: {"{"}name: p{"}"}
              timeouts: {timeouts}
            """;
        var e = Assert.Throws<PipelineRunFailed>(() => TektonEngine.LoadRun(Yaml(run)));
        Assert.Contains(message, e.Message);
    }

    /// <summary>Which timeout a try gets: taskRunSpecs, else the pipeline task's, else 60 minutes before v1.11 whatever timeouts.tasks says.</summary>
    [Fact]
    public void A_try_gets_the_pipeline_tasks_timeout_else_60_minutes_before_tekton_1_11()
    {
        var run = TektonEngine.LoadRun(Yaml("""
            apiVersion: tekton.dev/v1
            kind: PipelineRun
            metadata: {generateName: r-}
            spec:
              pipelineRef: {name: p}
              timeouts: {pipeline: 6h30m0s, tasks: 6h0m0s}
              taskRunSpecs:
                - pipelineTaskName: push
                  timeout: 5h
            """));
        var bare = new PipelineTaskDef("download", "hf-fetch", [], [], new Dictionary<string, string>(), 3);
        Assert.Equal(TimeSpan.FromMinutes(60), TektonEngine.TaskRunTimeout(bare, run));
        Assert.Equal(TimeSpan.FromHours(6), TektonEngine.TaskRunTimeout(bare, run, tekton111OrLater: true));
        Assert.Equal(TimeSpan.FromHours(2), TektonEngine.TaskRunTimeout(bare with { Timeout = TimeSpan.FromHours(2) }, run));
        Assert.Equal(TimeSpan.FromHours(5), TektonEngine.TaskRunTimeout(bare with { Name = "push", Timeout = TimeSpan.FromHours(2) }, run));
        // a taskRunSpecs timeout over timeouts.tasks is refused (validateTaskRunSpecTimeout)
        var e = Assert.Throws<PipelineRunFailed>(() => TektonEngine.LoadRun(Yaml("""
            apiVersion: tekton.dev/v1
            kind: PipelineRun
            metadata: {generateName: r-}
            spec:
              pipelineRef: {name: p}
              timeouts: {pipeline: 6h30m0s, tasks: 6h0m0s}
              taskRunSpecs: [{pipelineTaskName: push, timeout: 7h}]
            """)));
        Assert.Contains("over the PipelineRun's", e.Message);
    }

    /// <summary>Sleeps on the first <c>slowTries</c> tries of every step (until cancelled), then succeeds.</summary>
    private sealed class SlowExecutor(int slowTries) : IStepExecutor
    {
        public int Calls;

        public async Task<StepOutcome> RunAsync(ResolvedStep step, int attempt, CancellationToken ct)
        {
            Interlocked.Increment(ref Calls);
            if (attempt < slowTries)
            {
                await Task.Delay(TimeSpan.FromSeconds(30), ct);
            }
            return new StepOutcome(0, $"try {attempt + 1} ok", new Dictionary<string, string>());
        }
    }

    private static (PipelineDef, Dictionary<string, TaskDef>) OneTask(TimeSpan? timeout, int retries)
    {
        var task = new TaskDef("slow", [], [], [], [new StepDef("s", "img", ["/usr/local/bin/hf-fetch"], [], [])]);
        var pipeline = new PipelineDef("p", [], [], [new PipelineTaskDef("download", "slow", [], [], new Dictionary<string, string>(), retries, timeout)], []);
        return (pipeline, new Dictionary<string, TaskDef> { ["slow"] = task });
    }

    private static PipelineRunDef Run(RunTimeouts? timeouts) => new("p", new Dictionary<string, ParamValue>(), [], null, timeouts);

    [Fact]
    public async Task A_try_over_its_timeout_is_a_TaskRunTimeout_and_the_retry_runs()
    {
        var (pipeline, tasks) = OneTask(TimeSpan.FromMilliseconds(300), retries: 1);
        var executor = new SlowExecutor(slowTries: 1);
        var result = await TektonEngine.RunAsync(Run(new RunTimeouts(TimeSpan.FromMinutes(10), TimeSpan.FromMinutes(5), null)), pipeline, tasks, executor, CancellationToken.None);
        var record = result.TaskRuns["download"];
        Assert.Equal(2, record.Attempts);
        Assert.Contains("TaskRunTimeout", record.Outcomes[0].Log);
        Assert.Equal(TimeSpan.FromMilliseconds(300), record.Timeout);

        // without retries the same slow try fails the run
        var (noRetry, tasks2) = OneTask(TimeSpan.FromMilliseconds(300), retries: 0);
        var e = await Assert.ThrowsAsync<PipelineRunFailed>(() => TektonEngine.RunAsync(Run(new RunTimeouts(TimeSpan.FromMinutes(10), TimeSpan.FromMinutes(5), null)),
            noRetry, tasks2, new SlowExecutor(slowTries: 1), CancellationToken.None));
        Assert.Contains("TaskRunTimeout", e.Message);
    }

    [Fact]
    public async Task Timeouts_tasks_elapsing_fails_the_run_whatever_the_retries()
    {
        var (pipeline, tasks) = OneTask(TimeSpan.FromMinutes(5), retries: 3);
        var executor = new SlowExecutor(slowTries: 4);
        var e = await Assert.ThrowsAsync<PipelineRunFailed>(() => TektonEngine.RunAsync(
            Run(new RunTimeouts(TimeSpan.FromMinutes(10), TimeSpan.FromMilliseconds(300), null)), pipeline, tasks, executor, CancellationToken.None));
        Assert.Contains("timeouts.tasks", e.Message);
        Assert.Equal(1, executor.Calls);
    }
}
