"""A headless Catalyst Live receiver, run with ``pvpython --no-mpi`` (the tests' ParaView client).

    pvpython --no-mpi pv_live_receiver.py PORT OUT.jsonl [--channel weights] [--steps N] [--timeout S]

Listens on PORT as ``paraview --live=PORT`` would (VTK binds EVERY interface: run it in a
private network namespace), extracts one channel of the Catalyst pipeline and writes, per
update it sees, a JSON line with the step (the dataset's ``step`` field array) and the
channel's arrays, until N distinct steps arrived or the timeout.
"""

import argparse
import json
import sys
import time

from paraview import live, servermanager  # noqa: F401  (live sets up paraview.simple)
from vtkmodules.util.numpy_support import vtk_to_numpy


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("out")
    p.add_argument("--channel", default="weights")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args()
    with open(args.out + ".ready", "w") as fh:  # the listener is about to open
        fh.write("listening\n")
    link = live.ConnectToCatalyst("localhost", args.port)
    state = {"extract": None, "steps": set(), "updates": 0}
    out = open(args.out, "w", encoding="utf-8")

    def record(_obj, _event):
        state["updates"] += 1
        if state["extract"] is None:
            # the first update only makes the extract; data flows from the next one on
            state["extract"] = live.ExtractCatalystData(link, args.channel)
            return
        extract = state["extract"]
        extract.UpdatePipeline()
        data = servermanager.Fetch(extract)
        field = data.GetFieldData()
        step_array = field.GetArray("step")
        if step_array is None:
            return
        step = int(vtk_to_numpy(step_array)[0])
        arrays = {}
        for attrs in (data.GetCellData(), data.GetPointData()):
            for i in range(attrs.GetNumberOfArrays()):
                a = attrs.GetArray(i)
                arrays[a.GetName()] = vtk_to_numpy(a).tolist()
        out.write(json.dumps({"step": step, "cells": data.GetNumberOfCells(), "points": data.GetNumberOfPoints(),
                              "arrays": arrays}) + "\n")
        out.flush()
        state["steps"].add(step)

    link.AddObserver("UpdateEvent", record)
    deadline = time.monotonic() + args.timeout
    while len(state["steps"]) < args.steps and time.monotonic() < deadline:
        live.ProcessServerNotifications()
        time.sleep(0.02)
    out.close()
    print(f"receiver: {state['updates']} updates, steps {sorted(state['steps'])}", flush=True)
    return 0 if len(state["steps"]) >= args.steps else 1


if __name__ == "__main__":
    sys.exit(main())
