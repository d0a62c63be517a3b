"""
The error of each keypoint as a small bar chart (PNG bytes), for a student's
feedback on platforms that show images (PrairieLearn) and for the class report.
"""
import io


def keypoint_error_chart(errors, title="Error of each keypoint on the hidden faces"):
    """
    Draw one horizontal bar per keypoint, worst on top.

    Inputs:
    - errors: Dict {keypoint name: error in pixels} (results' extra_data.keypoint_errors_px)
    - title: The chart's title

    Returns:
    - PNG bytes (about 20 kB)
    """
    import matplotlib
    matplotlib.use("Agg")   # no display, wherever the grader runs
    from matplotlib.figure import Figure

    names = sorted(errors, key=errors.get)   # barh draws bottom-up: the worst ends on top
    figure = Figure(figsize=(6, 4), dpi=80)
    axes = figure.subplots()
    axes.barh(names, [errors[name] for name in names], color="tab:orange")
    axes.set_xlabel("root mean squared distance (pixels of the 96x96 face)")
    axes.set_title(title, fontsize=10)
    axes.tick_params(labelsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
