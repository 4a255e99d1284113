from mergekit_evo.report import summary_table


def test_summary_table_lists_sources_stages_champion_on_both_splits():
    metrics = {
        "baseline_fitness": {"math": 0.0, "lang": 0.02, "best": 0.02},
        "ps_best_fitness": 0.1,
        "dfs_best_fitness": 0.12,
        "champion_fitness": 0.12,
        "champion_trial": 58,
        "fitness_improvement": 5.0,
        "report": {
            "sources": {"math": {"score": 0.0}, "lang": {"score": 0.0325}},
            "champion": {"score": 0.0425},
            "improvement": 0.3077,
        },
    }
    lines = summary_table(metrics).splitlines()
    assert lines[0].split() == ["model", "search", "report"]
    assert lines[2].split() == ["lang", "0.0200", "0.0325"]
    assert lines[3].split() == ["PS", "best", "0.1000", "-"]
    assert lines[5].split() == ["champion", "(trial", "58)", "0.1200", "0.0425"]
    assert lines[6].split()[-2:] == ["+500.0%", "+30.8%"]
    assert "best" not in [line.split()[0] for line in lines[1:3]]  # 'best' is not a model
    assert len({len(line.rstrip()) for line in lines}) == 1  # aligned columns


def test_summary_table_without_report_split_or_dfs_stage():
    metrics = {
        "baseline_fitness": {"a": 0.5, "best": 0.5},
        "ps_best_fitness": 0.6,
        "champion_fitness": 0.6,
        "champion_trial": 3,
        "fitness_improvement": 0.2,
    }
    lines = summary_table(metrics).splitlines()
    assert [line.split()[0] for line in lines] == ["model", "a", "PS", "champion", "gain"]
    assert lines[-1].split()[-2:] == ["+20.0%", "-"]


def test_summary_table_says_the_gain_over_the_start_point():
    metrics = {
        "baseline_fitness": {"a": 0.5, "best": 0.5},
        "ps_best_fitness": 0.6,
        "champion_fitness": 0.6,
        "champion_trial": 3,
        "fitness_improvement": 0.2,
        "start_fitness": 0.4,
        "gain_over_start": 0.5,
    }
    lines = summary_table(metrics).splitlines()
    assert lines[2].split() == ["start", "(trial", "0)", "0.4000", "-"]
    assert lines[-1].split() == ["gain", "over", "the", "start", "+50.0%"]
