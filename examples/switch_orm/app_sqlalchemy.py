"""The workload on SQLAlchemy (asyncio ORM) through poolbridge.adapters.sqlalchemy."""

from __future__ import annotations

import asyncio

from common import TABLE, WORKERS, Report, load_config
from sqlalchemy import String, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from poolbridge.adapters.sqlalchemy import close_engine, create_async_engine, warm_up


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = TABLE
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


async def main() -> None:
    config = load_config()
    report = Report("sqlalchemy", config)
    engine = await warm_up(create_async_engine(config, hooks=report.hooks()))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        sessions = async_sessionmaker(engine, expire_on_commit=False)

        async def one(i: int) -> int:
            session: AsyncSession
            async with sessions() as session:
                session.add(Item(name=f"item-{i}"))
                await session.commit()
            async with sessions() as session:
                found = await session.scalar(select(Item).where(Item.name == f"item-{i}"))
                return 1 if found is not None else 0

        read = sum(await asyncio.gather(*(one(i) for i in range(WORKERS))))
        async with sessions() as session:
            inserted = await session.scalar(select(func.count()).select_from(Item)) or 0
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
    finally:
        await close_engine(engine, timeout=10)
    report.emit(inserted, read)


if __name__ == "__main__":
    asyncio.run(main())
