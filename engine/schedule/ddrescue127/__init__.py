"""The phases of ddrescue's schedule, one module each: copying (passes 1-5), trimming,
scraping and retrying. Each is a generator over the :class:`engine.rescue.rescuer.Rescuer` that
yields :class:`engine.rescue.rescuer.Read` objects and looks at their outcome after the rescuer
performed them.
"""
