using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace ModelCar.Pipeline.Tests;

/// <summary>A Tekton param value: a string or an array of strings.</summary>
internal sealed record ParamValue(string? String, IReadOnlyList<string>? Array)
{
    public static ParamValue Of(string s) => new(s, null);

    public static ParamValue Of(IReadOnlyList<string> a) => new(null, a);

    public bool IsArray => Array is not null;

    public static ParamValue FromYaml(YamlNode node) => node switch
    {
        YamlScalarNode s => Of(s.Value ?? string.Empty),
        YamlSequenceNode q => Of(q.Children.Select(c => ((YamlScalarNode)c).Value ?? string.Empty).ToList()),
        _ => throw new InvalidOperationException($"param value {node} is neither a string nor an array"),
    };

    public override string ToString() => IsArray ? "[" + string.Join(", ", Array!) + "]" : String!;
}

internal sealed record ParamDecl(string Name, string Type, ParamValue? Default);

internal sealed record WorkspaceDecl(string Name, string MountPath, bool ReadOnly, bool Optional);

internal sealed record EnvVar(string Name, string? Value, string? SecretName, string? SecretKey, bool SecretOptional);

internal sealed record StepDef(string Name, string Image, IReadOnlyList<string> Command, IReadOnlyList<string> Args, IReadOnlyList<EnvVar> Env);

internal sealed record TaskDef(string Name, IReadOnlyList<ParamDecl> Params, IReadOnlyList<WorkspaceDecl> Workspaces, IReadOnlyList<string> Results, IReadOnlyList<StepDef> Steps);

/// <summary>A pipeline task; <paramref name="Timeout"/> is its `timeout` (per TaskRun, i.e. per try), null when it sets none.</summary>
internal sealed record PipelineTaskDef(string Name, string TaskRef, IReadOnlyList<(string Name, YamlNode Value)> Params, IReadOnlyList<string> RunAfter,
    IReadOnlyDictionary<string, string> Workspaces, int Retries, TimeSpan? Timeout = null);

/// <summary>A PipelineRun's `timeouts` (null = not set; <see cref="TimeSpan.Zero"/> = no timeout, as in Tekton).</summary>
internal sealed record RunTimeouts(TimeSpan? Pipeline, TimeSpan? Tasks, TimeSpan? Finally);

internal sealed record PipelineDef(string Name, IReadOnlyList<ParamDecl> Params, IReadOnlyList<(string Name, bool Optional)> Workspaces,
    IReadOnlyList<PipelineTaskDef> Tasks, IReadOnlyList<(string Name, string Value)> Results);

/// <summary>How a PipelineRun binds a workspace: a fresh PVC, an existing claim, or a secret.</summary>
internal sealed record WorkspaceBinding(string Name, string Kind, string? Claim, string? SecretName);

/// <summary>A PipelineRun; <paramref name="TaskRunTimeouts"/> are its `taskRunSpecs[].timeout` overrides by pipeline task.</summary>
internal sealed record PipelineRunDef(string PipelineRef, IReadOnlyDictionary<string, ParamValue> Params, IReadOnlyList<WorkspaceBinding> Workspaces, string? ServiceAccount,
    RunTimeouts? Timeouts = null, IReadOnlyDictionary<string, TimeSpan>? TaskRunTimeouts = null);

/// <summary>One step after Tekton's substitution: what the kubelet would start.</summary>
internal sealed record ResolvedStep(string TaskRun, string Step, string Image, IReadOnlyList<string> Command, IReadOnlyList<string> Args,
    IReadOnlyDictionary<string, string> Env, IReadOnlyList<SecretEnv> SecretEnv, IReadOnlyList<(WorkspaceBinding Binding, WorkspaceDecl Decl)> Mounts);

/// <summary>An env variable from valueFrom.secretKeyRef (the kubelet resolves it from the secret).</summary>
internal sealed record SecretEnv(string Name, string Secret, string Key, bool Optional);

/// <summary>Runs one resolved step; returns the exit code and the results it wrote.</summary>
internal interface IStepExecutor
{
    Task<StepOutcome> RunAsync(ResolvedStep step, int attempt, CancellationToken ct);
}

internal sealed record StepOutcome(int ExitCode, string Log, IReadOnlyDictionary<string, string> Results);

internal sealed class PipelineRunFailed(string message) : Exception(message);

internal sealed record TaskRunRecord(string Name, int Attempts, IReadOnlyList<ResolvedStep> Steps, IReadOnlyList<StepOutcome> Outcomes, IReadOnlyDictionary<string, string> Results,
    TimeSpan? Timeout = null);

/// <summary>
/// The part of Tekton (tektoncd/pipeline v1) the shipped YAML uses, done the way the controller
/// does it: PipelineRun params over Pipeline defaults, pipeline-task params (strings and arrays,
/// `$(params.x[*])` spliced only as a whole array element), Task defaults, then the Task's
/// steps with `$(params.…)`, `$(workspaces.w.path)` (mountPath, /workspace/w by default, "" for an
/// unbound optional workspace) and `$(tasks.t.results.r)`; tasks start when their runAfter and
/// result producers are done (in parallel when several are ready); `retries` re-runs a failed
/// TaskRun on the same workspaces; results are capped at the 4 KB termination message. Timeouts:
/// a pipeline task's `timeout` is a duration (Tekton decodes it as a metav1.Duration, so no
/// `$(params…)` there), the run's `timeouts` are validated as Tekton's webhook does (tasks and
/// finally ≤ pipeline), `taskRunSpecs[].timeout` overrides a task's; each try gets the TaskRun
/// timeout Tekton before v1.11 gives it (<see cref="TaskRunTimeout"/>: taskRunSpecs, else the
/// pipeline task's `timeout`, else the 60-minute default — never `timeouts.tasks`) and fails when
/// over it (then `retries` applies), and the run fails when `timeouts.tasks`/`pipeline` has elapsed
/// since it started (cumulative, as the PipelineRun reconciler cancels). Any reference left over is
/// an error, as Tekton's validation would reject it; Task volumes and step volumeMounts and the
/// other `taskRunSpecs` fields, which it does not model, are refused.
/// </summary>
internal static partial class TektonEngine
{
    public const int ResultBudgetBytes = 4096;

    /// <summary>config-defaults `default-timeout-minutes` (60): what a TaskRun gets when nothing sets its timeout.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(60);

    // ---- durations (Go's time.ParseDuration, which metav1.Duration uses) ----

    [GeneratedRegex(@"^(?<num>[0-9]*(\.[0-9]*)?)(?<unit>ns|us|µs|ms|s|m|h)")]
    private static partial Regex DurationPart();

    /// <summary>Parses a Go duration ("4h", "1h30m0s", "90m", "0"); anything else (a $(…) reference, a sign, a bare number) is refused.</summary>
    public static TimeSpan ParseDuration(string text, string where)
    {
        Require(!text.Contains("$(", StringComparison.Ordinal),
            $"{where}: '{text}' is not a duration: Tekton decodes this field as a metav1.Duration (Go time.ParseDuration) and substitutes no $(params…) in it");
        Require(!text.StartsWith('-'), $"{where}: '{text}' is negative");
        if (text is "0" or "+0")
        {
            return TimeSpan.Zero;
        }
        var rest = text.TrimStart('+');
        Require(rest.Length > 0, $"{where}: '{text}' is not a duration");
        double ticks = 0;
        while (rest.Length > 0)
        {
            var m = DurationPart().Match(rest);
            Require(m.Success && m.Groups["num"].Value.Trim('.').Length > 0, $"{where}: '{text}' is not a duration (Go syntax: 4h, 1h30m0s, 90m)");
            var n = double.Parse(m.Groups["num"].Value, System.Globalization.CultureInfo.InvariantCulture);
            ticks += n * m.Groups["unit"].Value switch
            {
                "ns" => 0.01,
                "us" or "µs" => TimeSpan.TicksPerMicrosecond,
                "ms" => TimeSpan.TicksPerMillisecond,
                "s" => TimeSpan.TicksPerSecond,
                "m" => TimeSpan.TicksPerMinute,
                _ => TimeSpan.TicksPerHour,
            };
            rest = rest[m.Length..];
        }
        return TimeSpan.FromTicks((long)ticks);
    }

    /// <summary>
    /// The timeout one TaskRun (one try) of <paramref name="pt"/> gets, as tektoncd/pipeline's
    /// PipelineRun reconciler sets it (createTaskRun): taskRunSpecs[].timeout, else the pipeline task's
    /// `timeout`, else — before v1.11 — nothing, so the TaskRun defaulting gives it 60 minutes. From
    /// v1.11 (commit d1379f8f0, "propagate PipelineRun tasks/finally timeout to child TaskRuns")
    /// `timeouts.tasks` is handed down when it exceeds the default.
    /// </summary>
    public static TimeSpan TaskRunTimeout(PipelineTaskDef pt, PipelineRunDef run, bool tekton111OrLater = false)
    {
        if (run.TaskRunTimeouts?.TryGetValue(pt.Name, out var over) == true)
        {
            return over;
        }
        if (pt.Timeout is { } t)
        {
            return t;
        }
        if (tekton111OrLater && run.Timeouts?.Tasks is { } tasks && (tasks == TimeSpan.Zero || tasks > DefaultTimeout))
        {
            return tasks;
        }
        return DefaultTimeout;
    }

    private static RunTimeouts? LoadTimeouts(YamlNode spec)
    {
        if (spec.Get("timeouts") is not YamlMappingNode node)
        {
            return null;
        }
        foreach (var key in node.Children.Keys)
        {
            Require(((YamlScalarNode)key).Value is "pipeline" or "tasks" or "finally", $"timeouts.{key}: not a Tekton timeouts field");
        }
        TimeSpan? Field(string name) => node.Str(name) is { } v ? ParseDuration(v, $"timeouts.{name}") : null;
        var t = new RunTimeouts(Field("pipeline"), Field("tasks"), Field("finally"));
        // pipelinerun_validation.go validatePipelineTimeout: against timeouts.pipeline, or the default when it is unset
        var limit = t.Pipeline ?? DefaultTimeout;
        if (limit != TimeSpan.Zero)
        {
            Require(t.Tasks is null || (t.Tasks != TimeSpan.Zero && t.Tasks <= limit), $"timeouts.tasks {t.Tasks} should be <= pipeline duration {limit}");
            Require(t.Finally is null || (t.Finally != TimeSpan.Zero && t.Finally <= limit), $"timeouts.finally {t.Finally} should be <= pipeline duration {limit}");
            Require(t.Tasks is null || t.Finally is null || t.Tasks + t.Finally <= limit, $"timeouts.tasks + timeouts.finally should be <= pipeline duration {limit}");
        }
        return t;
    }

    public static string DefaultMountPath(string workspace) => $"/workspace/{workspace}";

    // ---- loading ----

    public static TaskDef LoadTask(YamlMappingNode doc)
    {
        Require(doc.Str("kind") == "Task", "not a Task");
        var spec = doc.Get("spec")!;
        // not modelled (the executor would run the step without them and a test pass or fail for the wrong reason)
        Require(spec.Get("volumes") is null && spec.Seq("steps").All(s => s.Get("volumeMounts") is null),
            $"Task {doc.Str("metadata", "name")}: volumes/volumeMounts are not modelled by this engine; use a workspace");
        return new TaskDef(doc.Str("metadata", "name")!,
            LoadParams(spec),
            spec.Seq("workspaces").Select(w => new WorkspaceDecl(w.Str("name")!, w.Str("mountPath") ?? DefaultMountPath(w.Str("name")!),
                w.Str("readOnly") == "true", w.Str("optional") == "true")).ToList(),
            spec.Seq("results").Select(r => r.Str("name")!).ToList(),
            spec.Seq("steps").Select(s =>
            {
                Require(s.Get("script") is null, "steps run typed commands, no script");
                return new StepDef(s.Str("name")!, s.Str("image")!, Strings(s, "command"), Strings(s, "args"),
                    s.Seq("env").Select(e => new EnvVar(e.Str("name")!, e.Str("value"),
                        e.Str("valueFrom", "secretKeyRef", "name"), e.Str("valueFrom", "secretKeyRef", "key"),
                        e.Str("valueFrom", "secretKeyRef", "optional") == "true")).ToList());
            }).ToList());
    }

    public static PipelineDef LoadPipeline(YamlMappingNode doc)
    {
        Require(doc.Str("kind") == "Pipeline", "not a Pipeline");
        var spec = doc.Get("spec")!;
        return new PipelineDef(doc.Str("metadata", "name")!, LoadParams(spec),
            spec.Seq("workspaces").Select(w => (w.Str("name")!, w.Str("optional") == "true")).ToList(),
            spec.Seq("tasks").Select(t => new PipelineTaskDef(t.Str("name")!, t.Str("taskRef", "name")!,
                t.Seq("params").Select(p => (p.Str("name")!, p.Get("value")!)).ToList(),
                Strings(t, "runAfter"),
                t.Seq("workspaces").ToDictionary(w => w.Str("name")!, w => w.Str("workspace")!),
                int.Parse(t.Str("retries") ?? "0", System.Globalization.CultureInfo.InvariantCulture),
                t.Str("timeout") is { } timeout ? ParseDuration(timeout, $"pipeline {doc.Str("metadata", "name")} task {t.Str("name")} timeout") : null)).ToList(),
            spec.Seq("results").Select(r => (r.Str("name")!, r.Str("value")!)).ToList());
    }

    public static PipelineRunDef LoadRun(YamlMappingNode doc)
    {
        Require(doc.Str("kind") == "PipelineRun", "not a PipelineRun");
        var spec = doc.Get("spec")!;
        return new PipelineRunDef(spec.Str("pipelineRef", "name")!,
            spec.Seq("params").ToDictionary(p => p.Str("name")!, p => ParamValue.FromYaml(p.Get("value")!)),
            spec.Seq("workspaces").Select(w =>
                w.Get("volumeClaimTemplate") is not null ? new WorkspaceBinding(w.Str("name")!, "volumeClaimTemplate", null, null)
                : w.Str("persistentVolumeClaim", "claimName") is { } claim ? new WorkspaceBinding(w.Str("name")!, "persistentVolumeClaim", claim, null)
                : w.Str("secret", "secretName") is { } secret ? new WorkspaceBinding(w.Str("name")!, "secret", null, secret)
                : w.Get("emptyDir") is not null ? new WorkspaceBinding(w.Str("name")!, "emptyDir", null, null)
                : throw new InvalidOperationException($"workspace binding {w.Str("name")}: unsupported volume source")).ToList(),
            spec.Str("taskRunTemplate", "serviceAccountName"),
            LoadTimeouts(spec),
            LoadTaskRunTimeouts(spec));
    }

    private static Dictionary<string, TimeSpan> LoadTaskRunTimeouts(YamlNode spec)
    {
        var timeouts = LoadTimeouts(spec);
        var map = new Dictionary<string, TimeSpan>();
        foreach (var trs in spec.Seq("taskRunSpecs"))
        {
            var name = trs.Str("pipelineTaskName") ?? throw new PipelineRunFailed("taskRunSpecs entry without pipelineTaskName");
            foreach (var key in ((YamlMappingNode)trs).Children.Keys)
            {
                Require(((YamlScalarNode)key).Value is "pipelineTaskName" or "timeout", $"taskRunSpecs {name}: {key} is not modelled by this engine (only timeout)");
            }
            if (trs.Str("timeout") is { } v)
            {
                var d = ParseDuration(v, $"taskRunSpecs {name} timeout");
                // validateTaskRunSpecTimeout: not over timeouts.tasks, else timeouts.pipeline, else the default
                var limit = timeouts?.Tasks ?? timeouts?.Pipeline ?? DefaultTimeout;
                Require(limit == TimeSpan.Zero || d <= limit, $"taskRunSpecs {name} timeout {d} is over the PipelineRun's {limit}");
                map[name] = d;
            }
        }
        return map;
    }

    private static IReadOnlyList<ParamDecl> LoadParams(YamlNode spec) =>
        spec.Seq("params").Select(p =>
        {
            var type = p.Str("type") ?? "string";
            var d = p.Get("default") is { } dn ? ParamValue.FromYaml(dn) : null;
            Require(d is null || d.IsArray == (type == "array"), $"param {p.Str("name")}: default does not match type {type}");
            return new ParamDecl(p.Str("name")!, type, d);
        }).ToList();

    private static IReadOnlyList<string> Strings(YamlNode node, string key) => node.Seq(key).Select(c => ((YamlScalarNode)c).Value ?? string.Empty).ToList();

    // ---- substitution ----

    [GeneratedRegex(@"\$\(([^()]+)\)")]
    private static partial Regex Reference();

    [GeneratedRegex(@"^\$\(params\.([A-Za-z0-9_.\-]+)\[\*\]\)$")]
    private static partial Regex WholeArray();

    /// <summary>Replaces every $(…) in a string; a string-valued reference only (arrays are an error here).</summary>
    public static string SubstituteString(string text, Func<string, string?> lookup, string where) =>
        Reference().Replace(text, m =>
        {
            var key = m.Groups[1].Value;
            if (key.EndsWith("[*]", StringComparison.Ordinal))
            {
                throw new PipelineRunFailed($"{where}: $({key}) must be a whole array element, not part of '{text}'");
            }
            return lookup(key) ?? throw new PipelineRunFailed($"{where}: no value for $({key}) in '{text}'");
        });

    /// <summary>Expands a list: an element that is exactly $(params.x[*]) of an array param splices its items.</summary>
    public static List<string> SubstituteList(IEnumerable<string> items, Func<string, ParamValue?> arrays, Func<string, string?> lookup, string where)
    {
        var result = new List<string>();
        foreach (var item in items)
        {
            var whole = WholeArray().Match(item);
            if (whole.Success)
            {
                var v = arrays(whole.Groups[1].Value) ?? throw new PipelineRunFailed($"{where}: no array param '{whole.Groups[1].Value}'");
                Require(v.IsArray, $"{where}: $(params.{whole.Groups[1].Value}[*]) of a string param");
                result.AddRange(v.Array!);
            }
            else
            {
                result.Add(SubstituteString(item, lookup, where));
            }
        }
        return result;
    }

    private static Dictionary<string, ParamValue> Bind(IReadOnlyList<ParamDecl> decls, IReadOnlyDictionary<string, ParamValue> given, string where)
    {
        var values = new Dictionary<string, ParamValue>();
        foreach (var name in given.Keys)
        {
            Require(decls.Any(d => d.Name == name), $"{where}: param '{name}' is not declared");
        }
        foreach (var d in decls)
        {
            var v = given.TryGetValue(d.Name, out var g) ? g : d.Default ?? throw new PipelineRunFailed($"{where}: param '{d.Name}' has no value and no default");
            Require(v.IsArray == (d.Type == "array"), $"{where}: param '{d.Name}' is {d.Type} but got {(v.IsArray ? "an array" : "a string")}");
            values[d.Name] = v;
        }
        return values;
    }

    private static Func<string, string?> StringLookup(IReadOnlyDictionary<string, ParamValue> values, IReadOnlyDictionary<string, string> extra) => key =>
    {
        if (key.StartsWith("params.", StringComparison.Ordinal) && values.TryGetValue(key["params.".Length..], out var v))
        {
            return v.IsArray ? throw new PipelineRunFailed($"$({key}) is an array: use $({key}[*]) as a whole element") : v.String;
        }
        return extra.TryGetValue(key, out var e) ? e : null;
    };

    // ---- running ----

    /// <summary>Runs the PipelineRun: every TaskRun in dependency order, retries, results.</summary>
    public static async Task<PipelineRunResult> RunAsync(PipelineRunDef run, PipelineDef pipeline, IReadOnlyDictionary<string, TaskDef> tasks,
        IStepExecutor executor, CancellationToken ct)
    {
        Require(run.PipelineRef == pipeline.Name, $"run references pipeline '{run.PipelineRef}'");
        var pipelineParams = Bind(pipeline.Params, run.Params, $"pipeline {pipeline.Name}");
        foreach (var (name, optional) in pipeline.Workspaces)
        {
            Require(optional || run.Workspaces.Any(w => w.Name == name), $"pipeline workspace '{name}' is not bound by the run");
        }
        foreach (var b in run.Workspaces)
        {
            Require(pipeline.Workspaces.Any(w => w.Name == b.Name), $"run binds unknown workspace '{b.Name}'");
        }

        var results = new Dictionary<string, IReadOnlyDictionary<string, string>>();
        var records = new Dictionary<string, TaskRunRecord>();
        var deps = pipeline.Tasks.ToDictionary(t => t.Name, t => DependenciesOf(t).ToHashSet());
        foreach (var (name, d) in deps)
        {
            foreach (var dep in d)
            {
                Require(deps.ContainsKey(dep), $"task {name} depends on unknown task {dep}");
            }
        }
        var pending = pipeline.Tasks.ToDictionary(t => t.Name);
        var running = new Dictionary<string, Task<TaskRunRecord>>();
        // timeouts.tasks (cumulative since the run started; the pipeline's when unset, itself 60 minutes by default):
        // the reconciler then times out the running TaskRuns and the run fails
        var budget = run.Timeouts?.Tasks ?? (run.Timeouts?.Pipeline is { } p ? p - (run.Timeouts.Finally ?? TimeSpan.Zero) : DefaultTimeout);
        using var tasksCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        if (budget > TimeSpan.Zero)
        {
            tasksCts.CancelAfter(budget);
        }
        var deadline = new TasksDeadline(tasksCts.Token, budget);
        while (pending.Count > 0 || running.Count > 0)
        {
            foreach (var ready in pending.Values.Where(t => deps[t.Name].All(records.ContainsKey)).ToList())
            {
                pending.Remove(ready.Name);
                running[ready.Name] = RunTaskAsync(ready, pipelineParams, run, tasks, results, executor, deadline, ct);
            }
            if (running.Count == 0)
            {
                throw new PipelineRunFailed("dependency cycle among " + string.Join(", ", pending.Keys));
            }
            var done = await Task.WhenAny(running.Values);
            var record = await done;
            running.Remove(record.Name);
            records[record.Name] = record;
            results[record.Name] = record.Results;
        }

        var lookup = StringLookup(pipelineParams, ResultsLookup(results));
        var pipelineResults = pipeline.Results.ToDictionary(r => r.Name, r => SubstituteString(r.Value, lookup, $"pipeline result {r.Name}"));
        return new PipelineRunResult(records, pipelineResults);
    }

    private static IEnumerable<string> DependenciesOf(PipelineTaskDef t)
    {
        foreach (var r in t.RunAfter)
        {
            yield return r;
        }
        foreach (var (_, value) in t.Params)
        {
            var texts = value is YamlSequenceNode s ? s.Children.Select(c => ((YamlScalarNode)c).Value ?? "") : [((YamlScalarNode)value).Value ?? ""];
            foreach (var text in texts)
            {
                foreach (Match m in Reference().Matches(text))
                {
                    var parts = m.Groups[1].Value.Split('.');
                    if (parts[0] == "tasks" && parts.Length == 4 && parts[2] == "results")
                    {
                        yield return parts[1];
                    }
                }
            }
        }
    }

    private static Dictionary<string, string> ResultsLookup(IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>> results)
    {
        var map = new Dictionary<string, string>();
        foreach (var (task, rs) in results)
        {
            foreach (var (name, value) in rs)
            {
                map[$"tasks.{task}.results.{name}"] = value;
            }
        }
        return map;
    }

    /// <summary>Resolves a pipeline task into its TaskRun's steps (the contract test uses this without running).</summary>
    public static IReadOnlyList<ResolvedStep> ResolveTaskRun(PipelineTaskDef pt, IReadOnlyDictionary<string, ParamValue> pipelineParams, PipelineRunDef run,
        IReadOnlyDictionary<string, TaskDef> tasks, IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>> results)
    {
        var where = $"task {pt.Name}";
        var task = tasks.TryGetValue(pt.TaskRef, out var t) ? t : throw new PipelineRunFailed($"{where}: no Task '{pt.TaskRef}'");
        var pipelineLookup = StringLookup(pipelineParams, ResultsLookup(results));
        var given = new Dictionary<string, ParamValue>();
        foreach (var (name, value) in pt.Params)
        {
            given[name] = value switch
            {
                YamlSequenceNode seq => ParamValue.Of(SubstituteList(seq.Children.Select(c => ((YamlScalarNode)c).Value ?? ""),
                    n => pipelineParams.GetValueOrDefault(n), pipelineLookup, $"{where} param {name}")),
                YamlScalarNode s when WholeArray().IsMatch(s.Value ?? "") => ParamValue.Of(SubstituteList([s.Value!], n => pipelineParams.GetValueOrDefault(n), pipelineLookup, $"{where} param {name}")),
                YamlScalarNode s => ParamValue.Of(SubstituteString(s.Value ?? "", pipelineLookup, $"{where} param {name}")),
                _ => throw new PipelineRunFailed($"{where}: param {name} has an unsupported value"),
            };
        }
        var values = Bind(task.Params, given, $"{where} ({task.Name})");

        var mounts = new List<(WorkspaceBinding, WorkspaceDecl)>();
        var extra = new Dictionary<string, string>();
        foreach (var name in pt.Workspaces.Keys)
        {
            Require(task.Workspaces.Any(w => w.Name == name), $"{where}: Task {task.Name} has no workspace '{name}'");
        }
        foreach (var decl in task.Workspaces)
        {
            var binding = pt.Workspaces.TryGetValue(decl.Name, out var pw) ? run.Workspaces.FirstOrDefault(b => b.Name == pw) : null;
            if (binding is null)
            {
                Require(decl.Optional, $"{where}: workspace '{decl.Name}' of {task.Name} is not bound");
                extra[$"workspaces.{decl.Name}.path"] = "";
                extra[$"workspaces.{decl.Name}.bound"] = "false";
                continue;
            }
            var sub = StringLookup(pipelineParams, new Dictionary<string, string>());
            binding = binding with
            {
                Claim = binding.Claim is null ? null : SubstituteString(binding.Claim, sub, $"workspace {binding.Name}"),
                SecretName = binding.SecretName is null ? null : SubstituteString(binding.SecretName, sub, $"workspace {binding.Name}"),
            };
            mounts.Add((binding, decl));
            extra[$"workspaces.{decl.Name}.path"] = decl.MountPath;
            extra[$"workspaces.{decl.Name}.bound"] = "true";
            extra[$"workspaces.{decl.Name}.claim"] = binding.Claim ?? "";
        }
        extra["context.taskRun.name"] = $"{pt.Name}-run";
        // a uid per TaskRun as Kubernetes gives one (derived from the names: the same run resolves the same way)
        extra["context.taskRun.uid"] = new Guid(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes($"{run.PipelineRef}/{pt.Name}")).AsSpan(0, 16)).ToString();
        extra["context.taskRun.namespace"] = "modelcar-test";
        extra["context.pipelineTask.retries"] = pt.Retries.ToString(System.Globalization.CultureInfo.InvariantCulture);
        extra["results.path"] = "/tekton/results";
        foreach (var r in task.Results)
        {
            extra[$"results.{r}.path"] = $"/tekton/results/{r}";
        }
        var lookup = StringLookup(values, extra);
        return task.Steps.Select(s =>
        {
            var sw = $"{where} step {s.Name}";
            var env = new Dictionary<string, string>();
            var secretEnv = new List<SecretEnv>();
            foreach (var e in s.Env)
            {
                if (e.SecretName is not null)
                {
                    secretEnv.Add(new SecretEnv(e.Name, SubstituteString(e.SecretName, lookup, sw), e.SecretKey!, e.SecretOptional));
                }
                else
                {
                    env[e.Name] = SubstituteString(e.Value ?? "", lookup, sw);
                }
            }
            return new ResolvedStep(pt.Name, s.Name, SubstituteString(s.Image, lookup, sw),
                SubstituteList(s.Command, n => values.GetValueOrDefault(n), lookup, sw),
                SubstituteList(s.Args, n => values.GetValueOrDefault(n), lookup, sw), env, secretEnv, mounts);
        }).ToList();
    }

    /// <summary>The run's timeouts.tasks as a token (cancelled when it has elapsed) and its length.</summary>
    private sealed record TasksDeadline(CancellationToken Token, TimeSpan Budget);

    private static async Task<TaskRunRecord> RunTaskAsync(PipelineTaskDef pt, IReadOnlyDictionary<string, ParamValue> pipelineParams, PipelineRunDef run,
        IReadOnlyDictionary<string, TaskDef> tasks, IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>> results, IStepExecutor executor,
        TasksDeadline deadline, CancellationToken ct)
    {
        await Task.Yield();
        IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>> snapshot;
        lock (results)
        {
            snapshot = results.ToDictionary(kv => kv.Key, kv => kv.Value);
        }
        var steps = ResolveTaskRun(pt, pipelineParams, run, tasks, snapshot);
        var task = tasks[pt.TaskRef];
        var timeout = TaskRunTimeout(pt, run);
        var outcomes = new List<StepOutcome>();
        for (int attempt = 0; ; attempt++)
        {
            var taskResults = new Dictionary<string, string>();
            bool failed = false;
            // each try is its own TaskRun with its own timeout (0 = none)
            using var attemptCts = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token);
            if (timeout > TimeSpan.Zero)
            {
                attemptCts.CancelAfter(timeout);
            }
            foreach (var step in steps)
            {
                var running = executor.RunAsync(step, attempt, attemptCts.Token);
                await Task.WhenAny(running, Task.Delay(System.Threading.Timeout.InfiniteTimeSpan, attemptCts.Token));
                if (attemptCts.IsCancellationRequested)
                {
                    _ = running.ContinueWith(r => r.Exception, TaskScheduler.Default);
                    ct.ThrowIfCancellationRequested();
                    Require(!deadline.Token.IsCancellationRequested,
                        $"task {pt.Name}: the PipelineRun's timeouts.tasks ({deadline.Budget}) elapsed during try {attempt + 1}: PipelineRunTimeout");
                    outcomes.Add(new StepOutcome(-1, $"task {pt.Name} try {attempt + 1}: TaskRunTimeout after {timeout}", new Dictionary<string, string>()));
                    failed = true;
                    break;
                }
                var outcome = await running;
                outcomes.Add(outcome);
                foreach (var (k, v) in outcome.Results)
                {
                    taskResults[k] = v;
                }
                if (outcome.ExitCode != 0)
                {
                    failed = true;
                    break;
                }
            }
            if (!failed)
            {
                foreach (var name in taskResults.Keys)
                {
                    Require(task.Results.Contains(name), $"task {pt.Name}: wrote result '{name}' that {task.Name} does not declare");
                }
                var size = taskResults.Sum(r => r.Key.Length + r.Value.Length + 32);
                Require(size <= ResultBudgetBytes, $"task {pt.Name}: results take {size} bytes, over the {ResultBudgetBytes}-byte termination message");
                return new TaskRunRecord(pt.Name, attempt + 1, steps, outcomes, taskResults, timeout);
            }
            if (attempt >= pt.Retries)
            {
                throw new PipelineRunFailed($"task {pt.Name} failed after {attempt + 1} attempt(s):\n{string.Join("\n---\n", outcomes.Select(o => o.Log))}");
            }
        }
    }

    private static void Require(bool condition, string message)
    {
        if (!condition)
        {
            throw new PipelineRunFailed(message);
        }
    }
}

internal sealed record PipelineRunResult(IReadOnlyDictionary<string, TaskRunRecord> TaskRuns, IReadOnlyDictionary<string, string> Results);
